//! `chaoslab serve --out DIR`: the dashboard over a finished sim run, with a slider through its virtual time.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;

use chaoslab::dashboard::replay::Replay;
use chaoslab::executions::Store;

/// Replay a finished run in the dashboard.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The run's output directory (the `--out` of `chaoslab run --sim`).
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Where the dashboard listens (port 0: any free port, printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The execution store the Runs tab lists (default: $CHAOSLAB_STORE, $CHAOSLAB_HOME/executions.db, or
    /// ~/.local/share/chaoslab/executions.db).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

/// Loads the run, serves it until Ctrl-C / SIGTERM.
pub fn execute(a: ServeArgs) -> anyhow::Result<ExitCode> {
    let replay = Replay::load(&a.out)?;
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(a.listen).await.with_context(|| {
            format!("cannot listen on {} (port in use? choose another with --listen)", a.listen)
        })?;
        let addr = listener.local_addr()?;
        let command = {
            use chaoslab::dashboard::view::Source as _;
            replay.run().command.clone()
        };
        println!("Replay of {} (reproduce with: {command})", a.out.display());
        println!("Dashboard: http://{addr}/");
        let store = match a.store.or_else(Store::default_path) {
            Some(path) => Some(Arc::new(Store::open(&path)?)),
            None => None,
        };
        let options = chaoslab::dashboard::Options { store, ..Default::default() };
        let app = chaoslab::api::catch_panics(chaoslab::dashboard::router(Arc::new(replay), options))
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(chaoslab::runner::shutdown_signal())
            .await
            .context("the dashboard server failed")?;
        Ok(ExitCode::SUCCESS)
    })
}
