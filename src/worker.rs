//! `EncoderWorker`: a persistent thread that encodes on its own encoder.
//!
//! The main thread hands it closures; they run in submission order on the
//! worker's encoder, whose stream is its own, so their GPU work may overlap
//! with the caller's. [`EncoderWorker::flush`] returns an event that the
//! caller's encoder can wait on; [`EncoderWorker::wait`] blocks until the
//! worker's work has run. The first error of a closure is returned by the
//! next `flush` or `wait`; closures submitted after a failed one are skipped
//! until then.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;
use std::thread::JoinHandle;

use crate::encoder::{CommandEncoder, EncoderStats, MlxEvent};
use crate::{MlxDevice, MlxError, Result};

type Job = Box<dyn FnOnce(&mut CommandEncoder) -> Result<()> + Send + 'static>;

enum Message {
    Job(Job),
    Flush(mpsc::Sender<Result<MlxEvent>>),
    Wait(mpsc::Sender<Result<EncoderStats>>),
}

pub struct EncoderWorker {
    sender: Option<mpsc::Sender<Message>>,
    thread: Option<JoinHandle<()>>,
}

impl EncoderWorker {
    /// Starts the worker thread with an encoder on a new stream of `device`.
    pub fn spawn(device: &MlxDevice) -> Result<EncoderWorker> {
        let (sender, receiver) = mpsc::channel::<Message>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<()>>();
        let device = device.clone();
        let thread = std::thread::Builder::new()
            .name("mlxn-encoder-worker".into())
            .spawn(move || {
                let mut encoder = match device.command_encoder_on_new_stream() {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(()));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                run(&mut encoder, receiver);
            })
            .map_err(|e| MlxError::Worker(format!("cannot start the thread: {e}")))?;
        ready_rx
            .recv()
            .map_err(|_| MlxError::Worker("the thread ended while starting".into()))??;
        Ok(EncoderWorker {
            sender: Some(sender),
            thread: Some(thread),
        })
    }

    /// Queues `job` to run on the worker's encoder.
    pub fn submit(
        &self,
        job: impl FnOnce(&mut CommandEncoder) -> Result<()> + Send + 'static,
    ) -> Result<()> {
        self.send(Message::Job(Box::new(job)))
    }

    /// Waits until every submitted job has been encoded and returns an event
    /// that completes when their GPU work has run.
    pub fn flush(&self) -> Result<MlxEvent> {
        let (tx, rx) = mpsc::channel();
        self.send(Message::Flush(tx))?;
        rx.recv().map_err(|_| dead())?
    }

    /// Waits until every submitted job has been encoded and has run; returns
    /// the worker encoder's counters.
    pub fn wait(&self) -> Result<EncoderStats> {
        let (tx, rx) = mpsc::channel();
        self.send(Message::Wait(tx))?;
        rx.recv().map_err(|_| dead())?
    }

    fn send(&self, m: Message) -> Result<()> {
        self.sender
            .as_ref()
            .ok_or_else(dead)?
            .send(m)
            .map_err(|_| dead())
    }
}

fn dead() -> MlxError {
    MlxError::Worker("the worker thread has stopped".into())
}

fn run(encoder: &mut CommandEncoder, receiver: mpsc::Receiver<Message>) {
    let mut failed: Option<MlxError> = None;
    for message in receiver {
        match message {
            Message::Job(job) => {
                if failed.is_none() {
                    failed = match catch_unwind(AssertUnwindSafe(|| job(encoder))) {
                        Ok(r) => r.err(),
                        Err(_) => Some(MlxError::Worker("a submitted job panicked".into())),
                    };
                }
            }
            Message::Flush(reply) => {
                let r = match failed.take() {
                    Some(e) => Err(e),
                    None => encoder.signal_event(),
                };
                let _ = reply.send(r);
            }
            Message::Wait(reply) => {
                let r = match failed.take() {
                    Some(e) => Err(e),
                    None => encoder.commit_and_wait().map(|_| encoder.stats()),
                };
                let _ = reply.send(r);
            }
        }
    }
}

impl Drop for EncoderWorker {
    fn drop(&mut self) {
        self.sender.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
