//! A page answer rendered in headless Chromium (`--dump-dom` under a virtual time budget,
//! no network): scripts injected first catch errors and console errors and drive
//! `requestAnimationFrame` by timers (virtual time runs timers, not frames); a script
//! injected last compares the largest canvas between two frames 700 ms apart and runs the
//! task's own layout assertion, then writes what it found into the DOM that is dumped.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::exec::{Scratch, run};

const HEAD: &str = r#"<script>(function(){var E=window.__tgErrors=[];
function push(m){if(E.length<10)E.push(String(m).slice(0,200));}
addEventListener('error',function(e){push(e.message||('failed to load '+((e.target&&(e.target.src||e.target.href))||'a resource')));},true);
addEventListener('unhandledrejection',function(e){push('unhandled rejection: '+(e.reason&&e.reason.message||e.reason));});
var ce=console.error;console.error=function(){push(Array.prototype.join.call(arguments,' '));return ce.apply(console,arguments);};
window.requestAnimationFrame=function(cb){return setTimeout(function(){cb(performance.now());},16);};
window.cancelAnimationFrame=function(i){clearTimeout(i);};})();</script>"#;

const TAIL: &str = r#"<script>(function(){function frame(){var c=document.querySelectorAll('canvas'),best=null;
for(var i=0;i<c.length;i++){if(!best||c[i].width*c[i].height>best.width*best.height)best=c[i];}
try{return best?best.toDataURL():null}catch(e){return 'error:'+e.message}}
function done(r){var p=document.createElement('pre');p.id='__tiergate_probe';p.textContent=encodeURIComponent(JSON.stringify(r));(document.body||document.documentElement).appendChild(p);}
function go(){setTimeout(function(){var a=frame();setTimeout(function(){var b=frame();
var r={errors:window.__tgErrors||[],canvas:a!==null,changed:a!==null&&a!==b,check:null};
try{r.check=(function(){ASSERT})();}catch(e){r.check={ok:false,why:'the check threw: '+e.message};}
done(r);},700);},300);}
if(document.readyState==='complete')go();else addEventListener('load',go);})();</script>"#;

#[derive(Debug, Deserialize)]
struct Found {
    errors: Vec<String>,
    canvas: bool,
    changed: bool,
    check: Option<Check>,
}

#[derive(Debug, Deserialize)]
struct Check {
    ok: bool,
    #[serde(default)]
    why: String,
}

/// What a page must do in the browser.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// A canvas that changes between two frames.
    pub animated_canvas: bool,
    /// A JavaScript function body run in the page, returning `{ok, why}`.
    pub assert_js: Option<&'static str>,
}

/// Where to put the head script: after `<head ...>`, else `<html ...>`, else the doctype.
fn head_at(html: &str) -> usize {
    let lower = html.to_ascii_lowercase();
    for tag in ["<head", "<html", "<!doctype"] {
        if let Some(i) = lower.find(tag)
            && let Some(end) = lower[i..].find('>')
        {
            return i + end + 1;
        }
    }
    0
}

pub fn instrument(html: &str, assert_js: Option<&str>) -> String {
    let at = head_at(html);
    let tail = TAIL.replace("ASSERT", assert_js.unwrap_or("return null;"));
    format!("{}{HEAD}{}{tail}", &html[..at], &html[at..])
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Renders `html`; Ok(None) when it passes, Ok(Some(why)) when it fails, Err when the
/// browser could not be run.
pub fn render(chromium: &Path, html: &str, expect: Expect) -> Result<Option<String>, String> {
    let dir = Scratch::new("page").map_err(|e| e.to_string())?;
    let page = dir
        .write("page.html", &instrument(html, expect.assert_js))
        .map_err(|e| e.to_string())?;
    let profile = dir.0.join("profile");
    let url = format!("file://{}", page.display());
    let profile_arg = format!("--user-data-dir={}", profile.display());
    let args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        profile_arg.as_str(),
        "--virtual-time-budget=4000",
        "--dump-dom",
        url.as_str(),
    ];
    let ran = run(chromium, &args, &dir.0, "", Duration::from_secs(60))
        .map_err(|e| format!("cannot start {}: {e}", chromium.display()))?;
    if ran.timed_out {
        return Ok(Some("the page did not finish rendering within 60 s".into()));
    }
    let marker = "<pre id=\"__tiergate_probe\">";
    let Some(start) = ran.stdout.find(marker).map(|i| i + marker.len()) else {
        if !ran.ok && ran.stdout.trim().is_empty() {
            return Err(format!("chromium failed: {}", ran.tail()));
        }
        return Ok(Some(
            "the page never finished loading (a script blocked or replaced the document)".into(),
        ));
    };
    let end = ran.stdout[start..]
        .find("</pre>")
        .map_or(ran.stdout.len(), |i| start + i);
    let found: Found = serde_json::from_str(&percent_decode(&ran.stdout[start..end]))
        .map_err(|e| format!("unreadable render result: {e}"))?;
    if let Some(first) = found.errors.first() {
        return Ok(Some(format!("console error: {first}")));
    }
    if expect.animated_canvas {
        if !found.canvas {
            return Ok(Some("no canvas on the rendered page".into()));
        }
        if !found.changed {
            return Ok(Some("the canvas did not change between two frames".into()));
        }
    }
    if let Some(c) = found.check
        && !c.ok
    {
        return Ok(Some(c.why));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_script_goes_first_and_decoding_works() {
        let i = instrument(
            "<!DOCTYPE html><html><head><title>t</title></head><body></body></html>",
            None,
        );
        assert!(i.starts_with("<!DOCTYPE html><html><head><script>"), "{i}");
        assert!(i.ends_with("</script>") && i.contains("return null;"));
        let bare = instrument("<canvas></canvas>", Some("return {ok:true};"));
        assert!(bare.starts_with("<script>") && bare.contains("return {ok:true};"));
        assert_eq!(percent_decode("%7B%22a%22%3A1%7D%zz"), "{\"a\":1}%zz");
    }
}
