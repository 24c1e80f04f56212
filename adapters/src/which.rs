//! Finding a program the way a shell would, without a shell.

use std::path::{Path, PathBuf};

/// The path `command` runs: itself when it contains a `/`, else the first executable file of
/// that name in `$PATH`.
pub fn find_program(command: &str) -> Option<PathBuf> {
    find_program_in(command, std::env::var_os("PATH").as_deref())
}

/// [`find_program`] with an explicit search path.
pub fn find_program_in(command: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    if command.is_empty() {
        return None;
    }
    if command.contains('/') {
        let p = PathBuf::from(command);
        return is_executable(&p).then_some(p);
    }
    std::env::split_paths(path?).map(|dir| dir.join(command)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata().is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_executables_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("tool");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.path().join("data");
        std::fs::write(&plain, "").unwrap();
        let path = std::env::join_paths([dir.path()]).unwrap();
        assert_eq!(find_program_in("tool", Some(&path)), Some(exe.clone()));
        assert_eq!(find_program_in("data", Some(&path)), None);
        assert_eq!(find_program_in("missing", Some(&path)), None);
        assert_eq!(find_program_in(exe.to_str().unwrap(), None), Some(exe));
        assert_eq!(find_program_in("", Some(&path)), None);
    }
}
