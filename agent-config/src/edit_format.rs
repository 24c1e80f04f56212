//! The form in which a model is asked to write its edits (`[edits] format`): the one
//! definition the configuration and the change workspace share.

use serde::{Deserialize, Serialize};

/// Files of at most this many lines are asked for whole under [`EditFormat::Auto`]; larger
/// ones as SEARCH/REPLACE blocks. The measured starting point: whole-file answers passed 11 of
/// 16 small tasks where blocks passed 7 of 16 (files of 10–80 lines); a whole file costs its
/// length in output tokens, so large files stay on blocks.
pub const AUTO_WHOLE_FILE_MAX_LINES: usize = 200;

/// Which edit format the implement/refine prompts ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditFormat {
    /// Whole files for files of at most [`AUTO_WHOLE_FILE_MAX_LINES`] lines (and new files),
    /// SEARCH/REPLACE blocks for larger ones.
    #[default]
    Auto,
    /// Always whole files.
    WholeFile,
    /// Always SEARCH/REPLACE blocks (whole files for new files).
    SearchReplace,
}

impl EditFormat {
    /// Whether a file of `lines` lines is asked for whole under this format.
    pub fn whole_file_for(self, lines: usize) -> bool {
        match self {
            Self::Auto => lines <= AUTO_WHOLE_FILE_MAX_LINES,
            Self::WholeFile => true,
            Self::SearchReplace => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_asks_small_files_whole_and_the_others_keep_to_their_form() {
        assert!(EditFormat::Auto.whole_file_for(AUTO_WHOLE_FILE_MAX_LINES));
        assert!(!EditFormat::Auto.whole_file_for(AUTO_WHOLE_FILE_MAX_LINES + 1));
        assert!(EditFormat::WholeFile.whole_file_for(10_000));
        assert!(!EditFormat::SearchReplace.whole_file_for(1));
        // The configuration's spelling.
        let f: EditFormat = serde_json::from_str("\"search_replace\"").unwrap();
        assert_eq!(f, EditFormat::SearchReplace);
    }
}
