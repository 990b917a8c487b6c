//! Input and output files of `replay` and `loadgen`: a path, or `-` (or no
//! path) for standard input and output, buffered in 1 MiB blocks, or plain
//! for `replay`, which reads and writes in blocks of its own.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::Path;

use super::ArgsError;

const BUFFER_BYTES: usize = 1 << 20;

pub fn open_input(path: Option<&Path>) -> Result<Box<dyn BufRead>, ArgsError> {
    match path {
        None => Ok(Box::new(io::stdin().lock())),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(io::stdin().lock())),
        Some(p) => {
            let file = File::open(p).map_err(|error| ArgsError::OpenInput {
                path: p.to_owned(),
                error,
            })?;
            Ok(Box::new(BufReader::with_capacity(BUFFER_BYTES, file)))
        }
    }
}

/// The input as a plain reader: `replay` reads it in large blocks itself.
pub fn open_raw_input(path: Option<&Path>) -> Result<Box<dyn Read>, ArgsError> {
    match path {
        None => Ok(Box::new(io::stdin())),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(io::stdin())),
        Some(p) => {
            let file = File::open(p).map_err(|error| ArgsError::OpenInput {
                path: p.to_owned(),
                error,
            })?;
            Ok(Box::new(file))
        }
    }
}

/// The output as a plain writer: `replay` writes it in blocks itself, and
/// a buffer would copy each block again (standard output still passes
/// through std's line buffer, which hands a block ending in a newline
/// straight on).
pub fn open_raw_output(path: Option<&Path>) -> Result<Box<dyn Write>, ArgsError> {
    Ok(match create(path)? {
        Some(file) => Box::new(file),
        None => Box::new(io::stdout().lock()),
    })
}

pub fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>, ArgsError> {
    Ok(match create(path)? {
        Some(file) => Box::new(BufWriter::with_capacity(BUFFER_BYTES, file)),
        None => Box::new(io::stdout().lock()),
    })
}

/// The file at `path`, created; `None` for standard output.
fn create(path: Option<&Path>) -> Result<Option<File>, ArgsError> {
    match path {
        None => Ok(None),
        Some(p) if p.as_os_str() == "-" => Ok(None),
        Some(p) => File::create(p)
            .map(Some)
            .map_err(|error| ArgsError::CreateOutput {
                path: p.to_owned(),
                error,
            }),
    }
}
