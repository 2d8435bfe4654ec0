//! A test server on its own thread and single-threaded tokio runtime, so it serves whatever the
//! test does (sync or async); told to stop and joined when dropped.

use std::future::Future;
use std::thread::JoinHandle;

use tokio::sync::oneshot;

pub struct Background {
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Runs `serve(stop)` on a new thread named `name`; `stop` resolves when this is dropped.
    pub fn spawn<F, Fut>(name: String, serve: F) -> std::io::Result<Background>
    where
        F: FnOnce(oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (shutdown, stop) = oneshot::channel();
        let thread =
            std::thread::Builder::new().name(name).spawn(move || runtime.block_on(serve(stop)))?;
        Ok(Background { shutdown: Some(shutdown), thread: Some(thread) })
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
