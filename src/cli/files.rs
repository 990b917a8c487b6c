//! Input and output files of `replay` and `loadgen`: a path, or `-` (or no
//! path) for standard input and output; plain for `replay`, which reads and
//! writes in blocks of its own, or buffered in 1 MiB blocks for `loadgen`.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use super::ArgsError;

const BUFFER_BYTES: usize = 1 << 20;

/// The input as a plain reader: `replay` reads it in blocks itself.
pub fn open_raw_input(path: Option<&Path>) -> Result<Box<dyn Read + Send>, ArgsError> {
    Ok(match file_path(path) {
        Some(p) => Box::new(File::open(p).map_err(|error| ArgsError::OpenInput {
            path: p.to_owned(),
            error,
        })?),
        None => Box::new(io::stdin()),
    })
}

/// The output as a plain writer: `replay` writes it in blocks itself, and
/// a buffer would copy each block again (standard output still passes
/// through std's line buffer, which hands a block ending in a newline
/// straight on).
pub fn open_raw_output(path: Option<&Path>) -> Result<Box<dyn Write + Send>, ArgsError> {
    Ok(match create(path)? {
        Some(file) => Box::new(file),
        None => Box::new(io::stdout()),
    })
}

/// The output buffered in 1 MiB blocks, for writers of small pieces.
pub fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>, ArgsError> {
    Ok(match create(path)? {
        Some(file) => Box::new(BufWriter::with_capacity(BUFFER_BYTES, file)),
        None => Box::new(io::stdout().lock()),
    })
}

/// The file at `path`, created; `None` for standard output.
fn create(path: Option<&Path>) -> Result<Option<File>, ArgsError> {
    file_path(path)
        .map(|p| {
            File::create(p).map_err(|error| ArgsError::CreateOutput {
                path: p.to_owned(),
                error,
            })
        })
        .transpose()
}

/// `path` unless it names a standard stream (none, or `-`).
fn file_path(path: Option<&Path>) -> Option<&Path> {
    path.filter(|p| p.as_os_str() != "-")
}
