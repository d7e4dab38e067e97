//! Embeds the migrations (`migrations/` at the top of the repository) in
//! the crate, as `sqlx::migrate!` would, without sqlx's proc-macro crate:
//! that crate builds a second sqlx (and tokio) for the host, a good part of
//! a cold build. `lib.rs` turns the list into the `Migrator`.
//!
//! A file name that is not `<version>_<description>.sql` fails the build,
//! as it would fail `sqlx::migrate!`.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../../migrations");
    let dir = dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("the migrations folder {}: {e}", dir.display()));
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable migrations folder").path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let mut out = String::from("/// (version, description, path's contents), in version order.\n");
    out.push_str("pub static MIGRATIONS: &[(i64, &str, &str)] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_else(|| panic!("{}: not a UTF-8 file name", path.display()));
        let (version, rest) = name
            .split_once('_')
            .unwrap_or_else(|| panic!("migration {name:?}: expected <version>_<description>.sql"));
        let version: i64 = version
            .parse()
            .unwrap_or_else(|e| panic!("migration {name:?}: the version is not an integer: {e}"));
        if rest.ends_with(".up.sql") || rest.ends_with(".down.sql") {
            panic!("migration {name:?}: reversible migrations are not embedded; write a new one");
        }
        // As sqlx reads it: without `.sql`, underscores as spaces.
        let description = rest.trim_end_matches(".sql").replace('_', " ");
        writeln!(
            out,
            "    ({version}, {description:?}, include_str!({:?})),",
            path.display().to_string()
        )
        .expect("writing to a String");
    }
    out.push_str("];\n");
    let target =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("migrations.rs");
    std::fs::write(&target, out).unwrap_or_else(|e| panic!("writing {}: {e}", target.display()));
}
