//! The stream decoders: lines of NDJSON and SSE (tokio-util's codec), Server-Sent Events,
//! and the answer collected from them.

use crate::agent::CallContext;

/// Splits a byte stream into lines (without `\n` or `\r\n`), for NDJSON and SSE: tokio-util's
/// [`LinesCodec`](tokio_util::codec::LinesCodec) fed chunk by chunk.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    codec: tokio_util::codec::LinesCodec,
    buf: bytes::BytesMut,
}

/// The longest line a stream may send.
const MAX_LINE: usize = 16 * 1024 * 1024;

impl Default for LineSplitter {
    fn default() -> LineSplitter {
        LineSplitter {
            codec: tokio_util::codec::LinesCodec::new_with_max_length(MAX_LINE),
            buf: bytes::BytesMut::new(),
        }
    }
}

fn line_error(e: tokio_util::codec::LinesCodecError) -> String {
    match e {
        tokio_util::codec::LinesCodecError::MaxLineLengthExceeded => {
            format!("a stream line is longer than {} MiB", MAX_LINE >> 20)
        }
        tokio_util::codec::LinesCodecError::Io(e) => format!("a stream line is not text: {e}"),
    }
}

impl LineSplitter {
    /// Feed bytes; complete lines come out.
    pub fn push(&mut self, bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
        use tokio_util::codec::Decoder;
        self.buf.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(line) = self.codec.decode(&mut self.buf).map_err(line_error)? {
            lines.push(line);
        }
        Ok(lines)
    }

    /// What is left when the stream ends (a last line without `\n`).
    pub fn finish(&mut self) -> Option<String> {
        use tokio_util::codec::Decoder;
        let rest = self.codec.decode_eof(&mut self.buf).ok().flatten()?;
        (!rest.trim().is_empty()).then_some(rest)
    }
}

/// One server-sent event's payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SseItem {
    /// The `data:` lines of one event, joined by `\n`.
    Data(String),
    /// An `error:` line (llama.cpp reports stream errors so).
    Error(String),
}

/// Decodes `text/event-stream`: `data:` lines, events ending at a blank line.
#[derive(Debug, Default)]
pub(crate) struct SseDecoder {
    lines: LineSplitter,
    data: Option<String>,
}

impl SseDecoder {
    pub fn push(&mut self, bytes: &[u8]) -> std::result::Result<Vec<SseItem>, String> {
        let mut out = Vec::new();
        for line in self.lines.push(bytes)? {
            self.line(&line, &mut out);
        }
        Ok(out)
    }

    /// Events left when the stream ends.
    pub fn finish(&mut self) -> Vec<SseItem> {
        let mut out = Vec::new();
        if let Some(line) = self.lines.finish() {
            self.line(&line, &mut out);
        }
        if let Some(d) = self.data.take() {
            out.push(SseItem::Data(d));
        }
        out
    }

    fn line(&mut self, line: &str, out: &mut Vec<SseItem>) {
        if line.is_empty() {
            if let Some(d) = self.data.take() {
                out.push(SseItem::Data(d));
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "error" => out.push(SseItem::Error(value.to_string())),
            _ => {}
        }
    }
}

/// Shared state of a streamed answer: the text so far, delivered to the caller's sink.
#[derive(Debug, Default)]
pub(crate) struct Collected {
    pub text: String,
    pub model: Option<String>,
    pub finish_reason: Option<String>,
    pub usage: Option<crate::agent::Tokens>,
    pub done: bool,
    /// Whether any answer choice arrived (a stream of nothing but `[DONE]` is broken).
    pub answered: bool,
}

impl Collected {
    pub fn push(&mut self, ctx: &CallContext, piece: &str) {
        self.answered = true;
        if !piece.is_empty() {
            ctx.chunk(piece);
            self.text.push_str(piece);
        }
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn sse_events_split_across_chunks() {
        let mut d = SseDecoder::default();
        let mut items = d.push(b"data: {\"a\":").unwrap();
        assert!(items.is_empty());
        items.extend(d.push(b"1}\r\n\r\n: comment\n\ndata: [DONE]\n").unwrap());
        items.extend(d.finish());
        assert_eq!(items, vec![SseItem::Data("{\"a\":1}".into()), SseItem::Data("[DONE]".into())]);
        let mut d = SseDecoder::default();
        let items = d.push(b"error: {\"message\":\"boom\"}\n\n").unwrap();
        assert_eq!(items, vec![SseItem::Error("{\"message\":\"boom\"}".into())]);
    }

    #[test]
    fn lines_split_across_chunks() {
        let mut s = LineSplitter::default();
        assert_eq!(s.push(b"{\"a\"").unwrap(), Vec::<String>::new());
        assert_eq!(s.push(b":1}\n{\"b\":2}\r\n{\"c\"").unwrap(), vec!["{\"a\":1}", "{\"b\":2}"]);
        assert_eq!(s.finish().as_deref(), Some("{\"c\""));
        assert_eq!(s.finish(), None);
    }
}
