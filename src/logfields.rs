//! The fields of a text log line, written as `tracing_subscriber`'s `DefaultFields` writes
//! them without colours, byte for byte, but without going through `core::fmt` for the common
//! values: plain strings, integers and booleans. The access log has a dozen such fields on
//! every request, and formatting them was most of the cost of a line. Anything else (the
//! message, floats, `%`/`?` values, errors, strings that need escaping, coloured output) is
//! handed to `DefaultVisitor` itself.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The field formatter of the text log (`.fmt_fields(FastFields)`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FastFields;

impl<'a> MakeVisitor<Writer<'a>> for FastFields {
    type Visitor = FastVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> FastVisitor<'a> {
        FastVisitor {
            plain: !writer.has_ansi_escapes(),
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

pub struct FastVisitor<'a> {
    writer: Writer<'a>,
    /// No colours: the only case written here; coloured output is all `DefaultVisitor`'s.
    plain: bool,
    is_empty: bool,
    result: fmt::Result,
}

impl FastVisitor<'_> {
    /// Whether this field is written here: a plain name (not the message, not raw, not
    /// `log.` metadata) on an uncoloured writer.
    fn fast(&self, name: &str) -> bool {
        self.plain
            && self.result.is_ok()
            && name != "message"
            && !name.starts_with("r#")
            && !name.starts_with("log.")
    }

    /// Writes ` name=` (the space only between fields).
    fn key(&mut self, name: &str) -> fmt::Result {
        if self.is_empty {
            self.is_empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(name)?;
        self.writer.write_char('=')
    }

    fn default_visitor(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut v);
        self.result = v.finish();
        self.is_empty = false;
    }

    fn write_u64(&mut self, name: &str, v: u64, negative: bool) {
        let mut buf = [0u8; 20];
        let digits = crate::digits::decimal(v, &mut buf);
        self.result = self.key(name).and_then(|()| {
            if negative {
                self.writer.write_char('-')?;
            }
            self.writer.write_str(digits)
        });
    }
}

/// Printable ASCII other than `"` and `\`: what `{:?}` of a `str` writes unchanged.
fn needs_no_escape(s: &str) -> bool {
    s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for FastVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        if self.fast(name) && needs_no_escape(value) {
            self.result = self.key(name).and_then(|()| {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            });
        } else {
            self.default_visitor(|v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.fast(field.name()) {
            self.write_u64(field.name(), value, false);
        } else {
            self.default_visitor(|v| v.record_u64(field, value));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.fast(field.name()) {
            self.write_u64(field.name(), value.unsigned_abs(), value < 0);
        } else {
            self.default_visitor(|v| v.record_i64(field, value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.fast(field.name()) {
            let text = if value { "true" } else { "false" };
            self.result = self
                .key(field.name())
                .and_then(|()| self.writer.write_str(text));
        } else {
            self.default_visitor(|v| v.record_bool(field, value));
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.default_visitor(|v| v.record_f64(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default_visitor(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.default_visitor(|v| v.record_debug(field, value));
    }
}

impl VisitOutput<fmt::Result> for FastVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for FastVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[derive(Debug)]
    struct Failure;
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("it broke")
        }
    }
    impl std::error::Error for Failure {}

    /// Every kind of field, and the values the fast path must leave to `DefaultVisitor`.
    fn events() {
        let id = String::from("0123abcd");
        tracing::info!(
            target: "tiergate::access",
            request_id = %id,
            endpoint = "chat_completions",
            status = 200u16,
            stream = true,
            done = false,
            input_tokens = 18446744073709551615u64,
            zero = 0u64,
            delta = -42i64,
            min = i64::MIN,
            cost_usd = 0.000123,
            ttft_ms = Some(1.5),
            missing = None::<f64>,
            quoted = "say \"hi\"",
            backslash = "a\\b",
            unicode = "héllo ✓",
            control = "tab\there\u{1b}[31m",
            empty = "",
            debug = ?vec![1, 2],
            r#type = "raw",
            "message with {}", "args"
        );
        tracing::warn!(
            upstream = "local",
            error = &Failure as &dyn std::error::Error,
            "failed: {}",
            3
        );
        tracing::info!("only a message");
        tracing::info!(n = 7u64);
    }

    fn render(fast: bool) -> String {
        let buf = Buf::default();
        let builder = tracing_subscriber::fmt()
            .with_writer(buf.clone())
            .with_ansi(false)
            .without_time();
        if fast {
            let sub = builder.fmt_fields(FastFields).finish();
            tracing::subscriber::with_default(sub, events);
        } else {
            let sub = builder.finish();
            tracing::subscriber::with_default(sub, events);
        }
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn lines_are_those_of_the_default_formatter_byte_for_byte() {
        let (fast, default) = (render(true), render(false));
        assert_eq!(fast.lines().count(), 4, "{fast}");
        assert!(
            fast.contains(r#"endpoint="chat_completions" status=200 stream=true"#),
            "{fast}"
        );
        assert_eq!(fast, default);
    }
}
