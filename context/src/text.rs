//! Small text helpers shared by the modules that cut text (passages, summaries, snippets).

/// Cut `s` to at most `max` bytes, at a character boundary.
pub(crate) fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        s.truncate(s.floor_char_boundary(max));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_at_a_character_boundary() {
        let mut s = "héllo".to_string();
        truncate_at_char(&mut s, 2);
        assert_eq!(s, "h");
        let mut s = "abc".to_string();
        truncate_at_char(&mut s, 10);
        assert_eq!(s, "abc");
    }
}
