//! Try the edit format by hand: print the instructions for some files, or apply a saved
//! model answer to a folder and print the outcome.
//!
//! ```text
//! cargo run -p troupe-change --example edit_answer -- instructions auto src/calc.py
//! cargo run -p troupe-change --example edit_answer -- apply PROJECT ANSWER.txt src/calc.py
//! ```

use std::path::Path;

use troupe_change::edit::{EditFormat, apply_answer, instructions};
use troupe_change::safety::Policy;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("instructions") => {
            let format = match args.get(1).map(String::as_str) {
                Some("whole_file") => EditFormat::WholeFile,
                Some("search_replace") => EditFormat::SearchReplace,
                _ => EditFormat::Auto,
            };
            let files: Vec<(String, usize)> = args[2..]
                .iter()
                .map(|f| {
                    let lines = std::fs::read_to_string(f).map_or(0, |t| t.lines().count());
                    (f.clone(), lines)
                })
                .collect();
            print!("{}", instructions(format, &files));
        }
        Some("apply") if args.len() >= 3 => {
            let answer = std::fs::read_to_string(&args[2])?;
            let shown = args[3..].to_vec();
            let (edits, outcome) =
                apply_answer(Path::new(&args[1]), &answer, &shown, &Policy::default())?;
            println!("{} edit(s): {}", edits.len(), outcome.summary());
            if let Some(problems) = outcome.problems() {
                println!("{problems}");
            }
        }
        _ => eprintln!(
            "usage: edit_answer instructions [auto|whole_file|search_replace] FILE… | apply PROJECT ANSWER FILE…"
        ),
    }
    Ok(())
}
