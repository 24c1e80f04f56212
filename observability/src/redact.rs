//! Secret redaction: one list of secret values, applied wherever text leaves troupe — log
//! lines, span attributes, the audit trail, run records and API answers.
//!
//! The values come from the configuration (API-key and token variables it names, `env`
//! entries of CLI agents, `secret_env`) and from the environment (variables whose names say
//! they hold a secret: `*_API_KEY`, `*_TOKEN`, `*_SECRET`, `*_PASSWORD`, …). The binary builds
//! one [`Redactor`], hands it to the runtime and [`install`]s it for the log writer.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Values shorter than this are not treated as secrets: masking `1` or `yes` everywhere
/// would destroy text and protect nothing.
pub const MIN_SECRET_LEN: usize = 6;

/// Replaces every known secret value in a text with [`MASK`].
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a secret containing another is masked whole.
    secrets: Arc<Vec<String>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the values themselves.
        f.debug_struct("Redactor").field("secrets", &self.secrets.len()).finish()
    }
}

/// Whether an environment variable's name says its value is a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    const SUFFIXES: [&str; 9] = [
        "_API_KEY",
        "_APIKEY",
        "_KEY",
        "_TOKEN",
        "_SECRET",
        "_PASSWORD",
        "_PASSWD",
        "_CREDENTIALS",
        "_AUTH",
    ];
    const NAMES: [&str; 4] = ["API_KEY", "TOKEN", "SECRET", "PASSWORD"];
    SUFFIXES.iter().any(|s| upper.ends_with(s)) || NAMES.contains(&upper.as_str())
}

impl Redactor {
    /// A redactor for these values (short and blank ones are ignored, duplicates dropped).
    pub fn new<I, S>(values: I) -> Redactor
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut secrets: Vec<String> = values
            .into_iter()
            .map(Into::into)
            .map(|s| s.trim().to_string())
            .filter(|s| s.chars().count() >= MIN_SECRET_LEN)
            .collect();
        secrets.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        secrets.dedup();
        Redactor { secrets: Arc::new(secrets) }
    }

    /// The values of the named environment variables plus those of every variable whose
    /// name says it is a secret ([`is_secret_name`]), plus `extra` values.
    pub fn from_env<'a>(
        named: impl IntoIterator<Item = &'a str>,
        extra: impl IntoIterator<Item = String>,
    ) -> Redactor {
        let mut values: Vec<String> =
            named.into_iter().filter_map(|n| std::env::var(n).ok()).collect();
        values.extend(std::env::vars().filter(|(k, _)| is_secret_name(k)).map(|(_, v)| v));
        values.extend(extra);
        Redactor::new(values)
    }

    /// How many secrets it masks.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    /// Whether it masks nothing.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every secret replaced by [`MASK`]; borrowed when there was none.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        for s in self.secrets.iter() {
            if out.contains(s.as_str()) {
                out = Cow::Owned(out.replace(s.as_str(), MASK));
            }
        }
        out
    }

    /// [`Redactor::redact`] into an owned string.
    pub fn redact_string(&self, text: String) -> String {
        match self.redact(&text) {
            Cow::Borrowed(_) => text,
            Cow::Owned(s) => s,
        }
    }

    /// Mask secrets in every string of a JSON value, in place.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        if self.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| self.redact_json(v)),
            _ => {}
        }
    }

    /// A redactor masking both this one's secrets and `other`'s.
    pub fn merged(&self, other: &Redactor) -> Redactor {
        Redactor::new(self.secrets.iter().chain(other.secrets.iter()).cloned())
    }
}

/// Masks a text that arrives in pieces (a streamed answer), where a secret may be split
/// across two pieces: it holds back the last few characters of each piece — as many as the
/// longest secret has, less one — until the next piece (or [`StreamRedactor::finish`]) shows
/// whether they begin a secret.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Redactor,
    held: String,
    hold: usize,
}

impl StreamRedactor {
    /// A stream masker for `redactor`'s secrets.
    pub fn new(redactor: Redactor) -> StreamRedactor {
        let hold = redactor.secrets.iter().map(|s| s.chars().count()).max().unwrap_or(1) - 1;
        StreamRedactor { redactor, held: String::new(), hold }
    }

    /// The next piece; what can be shown of the text so far (maybe empty).
    pub fn push(&mut self, piece: &str) -> String {
        if self.hold == 0 {
            return self.redactor.redact(piece).into_owned();
        }
        self.held.push_str(piece);
        let masked = self.redactor.redact(&self.held).into_owned();
        let keep_from =
            masked.char_indices().rev().nth(self.hold.saturating_sub(1)).map_or(0, |(i, _)| i);
        self.held = masked[keep_from..].to_string();
        masked[..keep_from].to_string()
    }

    /// The end of the stream: what was held back, masked.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.held);
        self.redactor.redact(&rest).into_owned()
    }
}

static GLOBAL: RwLock<Option<Redactor>> = RwLock::new(None);

/// Make `redactor` the process's redactor, used by the log writer [`crate::init`] installs
/// (and by anyone calling [`global`]). Called by the binary once the configuration is
/// loaded; a later call replaces it.
pub fn install(redactor: Redactor) {
    if let Ok(mut g) = GLOBAL.write() {
        *g = Some(redactor);
    }
}

/// The process's redactor (empty until [`install`]).
pub fn global() -> Redactor {
    GLOBAL.read().ok().and_then(|g| g.clone()).unwrap_or_default()
}

/// A writer that masks secrets in everything written through it (one log line per write, as
/// `tracing-subscriber` formats a whole event before writing it).
#[derive(Debug)]
pub struct RedactingWriter<W> {
    inner: W,
}

impl<W> RedactingWriter<W> {
    /// Wrap `inner`.
    pub fn new(inner: W) -> RedactingWriter<W> {
        RedactingWriter { inner }
    }
}

impl<W: std::io::Write> std::io::Write for RedactingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let redactor = global();
        if redactor.is_empty() {
            return self.inner.write(buf);
        }
        let text = String::from_utf8_lossy(buf);
        self.inner.write_all(redactor.redact(&text).as_bytes())?;
        // The caller's bytes are consumed whole, masked or not.
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_split_across_stream_pieces_is_masked_whole() {
        let r = Redactor::new(["sk-live-abcdef", "tok-123456"]);
        let text = "key sk-live-abcdef then tok-123456 and ünïcode sk-live-abcdef.";
        // Every way of cutting the text in two, and in pieces of every size.
        for cut in text.char_indices().map(|(i, _)| i) {
            let mut s = StreamRedactor::new(r.clone());
            let mut out = s.push(&text[..cut]);
            assert!(!out.contains("sk-live") || out.contains(MASK), "{out}");
            out.push_str(&s.push(&text[cut..]));
            out.push_str(&s.finish());
            assert_eq!(out, r.redact(text), "cut at {cut}");
        }
        for size in 1..8 {
            let chars: Vec<char> = text.chars().collect();
            let mut s = StreamRedactor::new(r.clone());
            let mut shown = Vec::new();
            for piece in chars.chunks(size) {
                shown.push(s.push(&piece.iter().collect::<String>()));
            }
            shown.push(s.finish());
            let all = shown.concat();
            assert_eq!(all, r.redact(text), "pieces of {size}");
            assert!(!all.contains("sk-live-abcdef") && !all.contains("tok-123456"));
        }
        // Without secrets, nothing is held back.
        let mut s = StreamRedactor::new(Redactor::default());
        assert_eq!(s.push("abc"), "abc");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn masks_every_occurrence_longest_first() {
        let r = Redactor::new(["sk-abcdef", "sk-abcdef-123456", "short"]);
        assert_eq!(r.len(), 2, "`short` is below the minimum length");
        assert_eq!(
            r.redact("a sk-abcdef-123456 b sk-abcdef c short"),
            "a [REDACTED] b [REDACTED] c short"
        );
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn secret_names() {
        for n in ["OPENAI_API_KEY", "GITHUB_TOKEN", "db_password", "MY_SECRET", "TOKEN"] {
            assert!(is_secret_name(n), "{n}");
        }
        for n in ["PATH", "HOME", "TOKENIZERS_PARALLELISM", "KEYBOARD", "TROUPE_OFFLINE"] {
            assert!(!is_secret_name(n), "{n}");
        }
    }

    #[test]
    fn json_strings_are_masked_at_any_depth() {
        let r = Redactor::new(["hunter2-secret"]);
        let mut v =
            serde_json::json!({"a": ["x hunter2-secret y", {"b": "hunter2-secret"}], "n": 3});
        r.redact_json(&mut v);
        assert_eq!(v, serde_json::json!({"a": ["x [REDACTED] y", {"b": "[REDACTED]"}], "n": 3}));
    }

    #[test]
    fn writer_masks_through_the_global_redactor() {
        use std::io::Write;
        install(Redactor::new(["writer-secret-value"]));
        let mut out = Vec::new();
        {
            let mut w = RedactingWriter::new(&mut out);
            let n = w.write(b"key=writer-secret-value end\n").unwrap();
            assert_eq!(n, 28);
        }
        assert_eq!(String::from_utf8(out).unwrap(), "key=[REDACTED] end\n");
    }
}
