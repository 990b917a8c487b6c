//! Input and output files of `replay` and `loadgen`: a path, or `-` (or no
//! path) for standard input and output, buffered in 1 MiB blocks.

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

pub fn open_output(path: Option<&Path>) -> Result<Box<dyn Write>, ArgsError> {
    match path {
        None => Ok(Box::new(io::stdout().lock())),
        Some(p) if p.as_os_str() == "-" => Ok(Box::new(io::stdout().lock())),
        Some(p) => {
            let file = File::create(p).map_err(|error| ArgsError::CreateOutput {
                path: p.to_owned(),
                error,
            })?;
            Ok(Box::new(BufWriter::with_capacity(BUFFER_BYTES, file)))
        }
    }
}
