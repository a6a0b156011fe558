//! Child tasks that die with the component that spawned them.
//!
//! A component's helpers (its MQTT connection loop, per-device generators) run as separate tasks but
//! belong to one incarnation: when the supervisor kills the component, dropping the [`ChildTask`]
//! handles aborts them too, so a crashed component leaves nothing running behind.

use tokio::task::JoinHandle;

/// A task aborted when this handle is dropped.
#[derive(Debug)]
pub struct ChildTask(JoinHandle<()>);

impl ChildTask {
    /// Spawns `fut` as a child.
    pub fn spawn(fut: impl Future<Output = ()> + Send + 'static) -> ChildTask {
        ChildTask(tokio::spawn(fut))
    }

    /// Waits for the child to end on its own.
    pub async fn join(mut self) {
        let _ = (&mut self.0).await;
    }
}

impl Drop for ChildTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}
