//! Stopping pixel work that has run out of time. A thread cannot be killed, so the steps look
//! at a shared flag between units of work (after the decode, before each variant's resize and
//! encode, before the strip) and give up at the next one. The worker waits for that before it
//! takes another job, so a timed-out job never runs beside the next one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::PipelineError;

/// A flag the owner of a job raises to stop its pixel work; cheap to clone into each thread.
#[derive(Debug, Clone, Default)]
pub struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Asks the work to stop at its next check.
    pub fn stop(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// `Stopped` once [`Stop::stop`] has been called.
    ///
    /// # Errors
    /// `Stopped`.
    pub fn check(&self) -> Result<(), PipelineError> {
        if self.0.load(Ordering::Relaxed) {
            Err(PipelineError::Stopped)
        } else {
            Ok(())
        }
    }
}
