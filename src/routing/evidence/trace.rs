//! Stack traces in the task: through a library's or a project's own modules (a repository
//! outside the prompt), or only through a short script and the standard library (all of it is
//! in the prompt). Python, JavaScript, Java/Kotlin and Go frames.

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Frames {
    /// Frames in installed packages or in a project's directories.
    pub library: u8,
    /// Frames in a lone script file or the standard library.
    pub script: u8,
}

pub fn frames(text: &str) -> Frames {
    let mut f = Frames::default();
    for line in text.lines() {
        let t = line.trim();
        let kind = if let Some(rest) = t.strip_prefix("File \"") {
            rest.split('"').next().map(python_frame)
        } else if let Some(rest) = t.strip_prefix("at ") {
            js_or_java_frame(rest)
        } else if t.contains(".go:") && (t.starts_with('/') || t.contains("/")) {
            Some(go_frame(t))
        } else {
            None
        };
        match kind {
            Some(true) => f.library = f.library.saturating_add(1),
            Some(false) => f.script = f.script.saturating_add(1),
            None => {}
        }
    }
    f
}

/// Whether a path is in a package or a project tree (true) or a lone file (false).
fn deep(path: &str) -> bool {
    path.matches(['/', '\\']).count() >= 2
}

fn python_frame(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    if p.contains("site-packages") || p.contains("dist-packages") {
        return true;
    }
    let stdlib = p.starts_with('<') || p.contains("/lib/python") || p.contains("\\lib\\");
    !stdlib && deep(&p)
}

fn js_or_java_frame(rest: &str) -> Option<bool> {
    let lower = rest.to_ascii_lowercase();
    if lower.contains("node_modules") || lower.contains("webpack://") {
        return Some(true);
    }
    if lower.contains("node:internal") || lower.contains("<anonymous>") {
        return Some(false);
    }
    // Java/Kotlin: `com.acme.orders.Repo.save(Repo.java:42)`.
    if let Some((name, _)) = rest.split_once('(')
        && rest.contains(".java:") | rest.contains(".kt:") | rest.contains("Native Method")
    {
        const PLATFORM: &[&str] = &[
            "java.",
            "javax.",
            "jdk.",
            "sun.",
            "kotlin.",
            "android.",
            "dalvik.",
            "com.android.",
        ];
        let platform = PLATFORM.iter().any(|p| name.trim().starts_with(p));
        return Some(!platform && name.matches('.').count() >= 3);
    }
    // JavaScript: `fn (path:line:col)` or `path:line:col`.
    let path = rest
        .rsplit_once('(')
        .map_or(rest, |(_, p)| p.trim_end_matches(')'));
    if path.matches(':').count() >= 2 {
        return Some(deep(path));
    }
    None
}

fn go_frame(t: &str) -> bool {
    let path = t.split(".go:").next().unwrap_or("");
    !path.contains("/go/src/") && !path.contains("/libexec/src/") && deep(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_frames_are_told_from_a_scripts() {
        let script = "Traceback (most recent call last):\n  File \"dates.py\", line 4, in <module>\n    d = x\n  File \"/usr/lib/python3.12/_strptime.py\", line 554, in _strptime_datetime\nValueError: bad";
        assert_eq!(
            frames(script),
            Frames {
                library: 0,
                script: 2
            }
        );
        let lib = "  File \"c:\\users\\d\\appdata\\local\\programs\\python\\python38-32\\lib\\site-packages\\ocdskit\\cli\\__main__.py\", line 61, in main";
        assert_eq!(frames(lib).library, 1);
        let java = "at com.ourapp.profile.ProfileFragment.onResume(ProfileFragment.kt:88)\nat android.app.Activity.performResume(Activity.java:8)";
        assert_eq!(
            frames(java),
            Frames {
                library: 1,
                script: 1
            }
        );
        let js = "    at CartSummary (webpack://shop/./src/cart/Summary.tsx:41:22)\n    at Object.<anonymous> (/tmp/x.js:1:1)";
        assert_eq!(
            frames(js),
            Frames {
                library: 1,
                script: 1
            }
        );
        let go = "main.main()\n\t/app/internal/orders/handler.go:52 +0x1d";
        assert_eq!(frames(go).library, 1);
        assert_eq!(frames("at the end of the day, it works"), Frames::default());
    }
}
