//! One OS thread per network namespace: the thread joins the namespace (`setns`), then runs a
//! current-thread tokio runtime that executes jobs sent from the test. Sockets opened,
//! threads started (tokio's blocking pool) and processes spawned from it all live in that
//! namespace.
#![forbid(unsafe_code)]

use std::fs::File;
use std::future::Future;
use std::pin::Pin;
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};
use tokio::sync::mpsc;

type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()>>> + Send>;

/// An executor bound to one network namespace.
pub struct NsExec {
    pub ns: String,
    tx: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl NsExec {
    /// Starts the executor for the named namespace (`/var/run/netns/<ns>`); `None` = the
    /// current namespace.
    pub fn new(ns: Option<&str>) -> Result<Self, String> {
        let file = match ns {
            Some(n) => Some(
                File::open(format!("/var/run/netns/{n}"))
                    .map_err(|e| format!("open netns {n}: {e}"))?,
            ),
            None => None,
        };
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name(format!("ns-{}", ns.unwrap_or("host")))
            .spawn(move || {
                if let Some(f) = file {
                    if let Err(e) = setns(&f, CloneFlags::CLONE_NEWNET) {
                        let _ = ready_tx.send(Err(format!("setns: {e}")));
                        return;
                    }
                }
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("runtime: {e}")));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(()));
                rt.block_on(async move {
                    while let Some(job) = rx.recv().await {
                        job().await;
                    }
                });
            })
            .map_err(|e| e.to_string())?;
        ready_rx.recv().map_err(|e| e.to_string())??;
        Ok(Self {
            ns: ns.unwrap_or("host").to_string(),
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `f()` to completion inside the namespace and returns its output.
    pub fn run<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + 'static,
    {
        let (rtx, rrx) = std::sync::mpsc::channel();
        let job: Job = Box::new(move || {
            Box::pin(async move {
                let out = f().await;
                let _ = rtx.send(out);
            })
        });
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(job).is_ok())
            .unwrap_or(false);
        assert!(sent, "namespace executor {} is gone", self.ns);
        match rrx.recv() {
            Ok(v) => v,
            Err(_) => panic!("job in namespace {} panicked", self.ns),
        }
    }

    /// Runs a blocking closure (e.g. a `Command`) on the namespace thread.
    pub fn sync<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.run(move || async move { f() })
    }
}

impl Drop for NsExec {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
