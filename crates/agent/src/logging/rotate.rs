//! `<dir>/patroni.log`, rotated by size as Python's `RotatingFileHandler` does it (`log.file_size`,
//! `log.file_num`), and the stderr fallback when it cannot be written.
//!
//! By hand because `tracing-appender`'s rolling appender rotates by time and names files by date; Patroni's
//! `patroni.log.1` ... `patroni.log.<file_num>` shift, which logrotate setups and DBAs' habits expect, has no
//! crate equivalent.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{LoggingError, LOG_FILE_NAME};

pub(super) struct RotatingFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    backups: u32,
    mode: Option<u32>,
    /// An error was already reported on stderr; cleared by the next successful write.
    failing: bool,
}

fn open_append(path: &Path, mode: Option<u32>) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        if let Some(m) = mode {
            o.mode(m);
        }
        let f = o.open(path)?;
        // Patroni chmods on every open: the file may predate the configured mode.
        if let Some(m) = mode {
            f.set_permissions(std::fs::Permissions::from_mode(m))?;
        }
        Ok(f)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        o.open(path)
    }
}

impl RotatingFile {
    pub(super) fn open(dir: &Path, mode: Option<u32>, file_num: u32, file_size: u64) -> Result<Self, LoggingError> {
        let path = dir.join(LOG_FILE_NAME);
        let open = || -> io::Result<(File, u64)> {
            let file = open_append(&path, mode)?;
            let size = file.metadata()?.len();
            Ok((file, size))
        };
        let (file, size) = open().map_err(|source| LoggingError::Open { path: path.clone(), source })?;
        Ok(Self { path, file, size, max_bytes: file_size, backups: file_num, mode, failing: false })
    }

    /// Applies new rotation limits and `mode` to the open file, which keeps being appended to.
    pub(super) fn update(&mut self, mode: Option<u32>, file_num: u32, file_size: u64) -> Result<(), LoggingError> {
        self.max_bytes = file_size;
        self.backups = file_num;
        if self.mode != mode {
            self.mode = mode;
            #[cfg(unix)]
            if let Some(m) = mode {
                use std::os::unix::fs::PermissionsExt;
                self.file
                    .set_permissions(std::fs::Permissions::from_mode(m))
                    .map_err(|source| LoggingError::Open { path: self.path.clone(), source })?;
            }
        }
        Ok(())
    }

    fn numbered(&self, n: u32) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    fn rotate(&mut self) -> io::Result<()> {
        for i in (1..self.backups).rev() {
            let src = self.numbered(i);
            if src.exists() {
                std::fs::rename(&src, self.numbered(i + 1))?;
            }
        }
        std::fs::rename(&self.path, self.numbered(1))?;
        self.file = open_append(&self.path, self.mode)?;
        self.size = 0;
        Ok(())
    }

    /// Called before each batch: another program (logrotate's copytruncate) may have changed the file.
    fn resync(&mut self) {
        if let Ok(m) = self.file.metadata() {
            self.size = m.len();
        }
    }

    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64;
        if self.max_bytes > 0 && self.backups > 0 && self.size > 0 && self.size + len >= self.max_bytes {
            if let Err(e) = self.rotate() {
                // Keep appending to the file we have rather than lose lines.
                self.report(&format!("cannot rotate {}: {e}", self.path.display()));
            }
        }
        self.file.write_all(line.as_bytes())?;
        self.size += len;
        self.failing = false;
        Ok(())
    }

    fn report(&mut self, what: &str) {
        if !self.failing {
            self.failing = true;
            eprintln!("patroni: logging: {what}");
        }
    }
}

pub(super) struct Sink {
    pub(super) stderr: Box<dyn Write + Send>,
    pub(super) file: Option<RotatingFile>,
}

impl Sink {
    pub(super) fn write_batch(&mut self, lines: &[String]) {
        if let Some(f) = &mut self.file {
            f.resync();
        }
        for line in lines {
            if let Some(f) = &mut self.file {
                match f.write_line(line) {
                    Ok(()) => continue,
                    Err(e) => {
                        let what = format!("cannot write {}: {e}", f.path.display());
                        f.report(&what);
                    }
                }
            }
            let _ = self.stderr.write_all(line.as_bytes());
        }
        let _ = self.stderr.flush();
    }
}
