//! The reports of ended connections, until they can be spooled: some wait for the end of the
//! input (a stream of theirs may be lent a decoder configuration then), some for the SHA-256
//! of a file.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use super::hash::Hashing;
use super::report::{ConnectionReport, Connections, Spool, TextKind};
use crate::flow::ConnId;

#[derive(Default)]
pub(super) struct Waiting {
    /// Reports of ended connections, in the order they began, that wait for the end of the
    /// input, or all of them when there is no spool.
    end: BTreeMap<ConnId, ConnectionReport>,
    /// Reports of ended connections that wait for the SHA-256 of a file (a few: at most one
    /// file per core is hashed at a time).
    sum: BTreeMap<ConnId, ConnectionReport>,
    /// Where the reports of the other ended connections go (`spool_in`).
    spool: Option<Spool>,
}

impl Waiting {
    /// Keep the reports in an unnamed file in `dir` (see [`Spool`]).
    pub(super) fn spool_in(&mut self, dir: &Path, text: TextKind) -> io::Result<()> {
        self.spool = Some(Spool::new(dir, text)?);
        Ok(())
    }

    /// The reports that wait for the end of the input.
    pub(super) fn end(&mut self) -> &mut BTreeMap<ConnId, ConnectionReport> {
        &mut self.end
    }

    /// An ended connection's report: into the spool, or kept until what it waits for comes
    /// (the end of the input if `for_end`).
    pub(super) fn settle(
        &mut self,
        mut c: ConnectionReport,
        for_end: bool,
        hashing: Option<&mut Hashing>,
    ) -> io::Result<()> {
        let id = c.summary.id;
        if self.spool.is_none() || for_end {
            self.end.insert(id, c);
            return Ok(());
        }
        if let Some(h) = hashing {
            if h.waited_for(&c) {
                self.sum.insert(id, c);
                return Ok(());
            }
            h.apply(&mut c);
        }
        match &mut self.spool {
            Some(sp) => match sp.push(&c) {
                // The disk is full: the report waits in memory for the end instead.
                Err(e) if super::queue::is_no_space(&e) => {
                    self.end.insert(id, c);
                    Ok(())
                }
                r => r,
            },
            None => Ok(()),
        }
    }

    /// Spool the reports whose sums have been worked out since.
    pub(super) fn release_summed(&mut self, hashing: Option<&mut Hashing>) -> io::Result<()> {
        let Some(h) = hashing else {
            return Ok(());
        };
        if self.sum.is_empty() {
            return Ok(());
        }
        h.poll();
        let ready: Vec<ConnId> = self
            .sum
            .iter()
            .filter(|(_, c)| !h.waited_for(c))
            .map(|(&id, _)| id)
            .collect();
        for id in ready {
            if let Some(mut c) = self.sum.remove(&id) {
                h.apply(&mut c);
                if let Some(sp) = &mut self.spool {
                    sp.push(&c)?;
                }
            }
        }
        Ok(())
    }

    /// End of the input: every report still waiting goes to the spool, if there is one.
    pub(super) fn finish(&mut self, hashing: Option<&mut Hashing>) -> io::Result<()> {
        if self.spool.is_some() {
            for c in self.take(hashing) {
                if let Some(sp) = &mut self.spool {
                    sp.push(&c)?;
                }
            }
        }
        Ok(())
    }

    /// Every report still waiting, in the order the connections began, with the sums of
    /// their files (once every sum is worked out).
    pub(super) fn take(&mut self, mut hashing: Option<&mut Hashing>) -> Vec<ConnectionReport> {
        if let Some(h) = hashing.as_deref_mut() {
            h.wait_all();
        }
        let mut all: Vec<ConnectionReport> = std::mem::take(&mut self.end)
            .into_values()
            .chain(std::mem::take(&mut self.sum).into_values())
            .collect();
        all.sort_by_key(|c| c.summary.id);
        if let Some(h) = hashing {
            for c in &mut all {
                h.apply(c);
            }
        }
        all
    }

    /// The connections seen, for the report: the spool when there is one (after
    /// [`finish`](Self::finish)), else the reports in memory.
    pub(super) fn into_connections(mut self, hashing: Option<&mut Hashing>) -> Connections {
        match self.spool.take() {
            Some(sp) => Connections::Spooled(sp),
            None => Connections::Memory(self.take(hashing)),
        }
    }
}
