//! The `cdc` command line.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use cdc::admin::{self, Metrics};
use cdc::config::Config;
use cdc::error::CdcError;
use cdc::model::Position;
use cdc::pipeline::{Pipeline, PipelineOutcome};
use cdc::positions::{FilePositionStore, KafkaPositionStore, PositionStore, SinkPositionStore};
use cdc::{sinks, sources};

#[derive(Parser)]
#[command(name = "cdc", version, about = "Change data capture from MySQL/MariaDB and PostgreSQL")]
struct Cli {
    /// Log format on standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter, e.g. `info`, `debug`, `cdc=debug` (overrides RUST_LOG).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Copy, Clone, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Stream changes until stopped (SIGINT/SIGTERM: flush, checkpoint, exit 0).
    Run {
        #[arg(long, short)]
        config: PathBuf,
        /// Start here instead of the stored position (resets the stored position), e.g.
        /// `mysql:file=binlog.000003:pos=4`, `mysql:gtid=0-1-100`, `pg:lsn=0/16B3748`.
        #[arg(long)]
        from: Option<String>,
    },
    /// Preflight: config, connectivity, privileges and server settings.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Decode binlog files offline to Debezium JSON lines on standard output.
    InspectBinlog {
        /// Binlog files (gzip-compressed files are accepted).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Decode only events starting at or after this offset.
        #[arg(long)]
        from_pos: Option<u64>,
        /// Stop before the event at this offset.
        #[arg(long)]
        stop_pos: Option<u64>,
        /// Logical server name written as `source.name`.
        #[arg(long, default_value = "inspect")]
        name: String,
    },
    /// PostgreSQL replication slot management.
    Slot {
        #[command(subcommand)]
        command: SlotCommand,
    },
    /// Compare every selected source table with the database replica, row by row. Prints one
    /// line per table; exits 0 when all match, 2 when any differs (1 on errors).
    Verify {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show or set the stored position.
    Positions {
        #[command(subcommand)]
        command: PositionsCommand,
    },
}

#[derive(Subcommand)]
enum SlotCommand {
    /// Drop the source's replication slot (cdc never drops it on its own). The stored
    /// position becomes useless: the next run needs a new snapshot.
    Drop {
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum PositionsCommand {
    /// Print the stored position and its age.
    Show {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Overwrite the stored position (even with an older one).
    Set {
        #[arg(long, short)]
        config: PathBuf,
        position: String,
    },
}

fn main() -> ExitCode {
    cdc::return_freed_memory_promptly();
    let cli = Cli::parse();
    init_logging(cli.log_format, cli.log_level.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cdc: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(dispatch(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming cause and remedy; no backtrace for a user's mistake.
            eprintln!("cdc: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    // Colours only for a terminal: log files and collectors get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Run { config, from } => run(&load(&config)?, from.as_deref()).await,
        Command::Check { config } => check(&load(&config)?).await,
        Command::Verify { config } => {
            if cdc::verify::run(&load(&config)?).await? {
                Ok(())
            } else {
                std::process::exit(2)
            }
        }
        Command::InspectBinlog { files, from_pos, stop_pos, name } => inspect_binlog(&files, from_pos, stop_pos, &name),
        Command::Slot { command: SlotCommand::Drop { config } } => {
            println!("{}", sources::drop_slot(&load(&config)?).await?);
            Ok(())
        }
        Command::Positions { command: PositionsCommand::Show { config } } => show_position(&load(&config)?).await,
        Command::Positions { command: PositionsCommand::Set { config, position } } => {
            let config = load(&config)?;
            let position = parse_position(&position)?;
            position_store(&config)?.reset(&position).await?;
            println!("stored position set to {position}");
            Ok(())
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<Config> {
    Ok(Config::load(path)?)
}

fn parse_position(text: &str) -> Result<Position, CdcError> {
    text.parse().map_err(|e| {
        CdcError::definite(
            format!("--from: {e}"),
            "give a position like mysql:file=binlog.000003:pos=4 or pg:lsn=0/16B3748",
        )
    })
}

fn position_store(config: &Config) -> Result<Arc<dyn PositionStore>, CdcError> {
    match config.positions.store {
        cdc::config::StoreKind::File => Ok(Arc::new(FilePositionStore::new(&config.positions.path, &config.name))),
        cdc::config::StoreKind::Kafka => match &config.sink {
            cdc::config::SinkConfig::Kafka(k) => {
                Ok(Arc::new(KafkaPositionStore::new(k, &config.positions_topic(), &config.name)?))
            }
            _ => Err(CdcError::definite("positions.store = \"kafka\" needs a Kafka sink", "set sink.kind = \"kafka\"")),
        },
        cdc::config::StoreKind::Sink => match SinkPositionStore::for_sink(&config.sink, &config.name) {
            Some(store) => Ok(Arc::new(store)),
            None => Err(CdcError::definite(
                "positions.store = \"sink\" needs a database sink",
                "set sink.kind = \"postgres\" or \"mysql\"",
            )),
        },
    }
}

async fn run(config: &Config, from: Option<&str>) -> anyhow::Result<()> {
    // CPU for a few MB, except with Kafka (see keep_freed_memory_for_ms).
    if !matches!(config.sink, cdc::config::SinkConfig::Kafka(_)) {
        cdc::keep_freed_memory_for_ms(10);
    }
    let metrics = Arc::new(Metrics::new(&config.name));
    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone());
    let http = match &config.http {
        Some(h) => Some(admin::serve(h.listen, metrics.clone(), shutdown.clone()).await?),
        None => None,
    };
    let mut from = from;
    let mut backoff = cdc::pipeline::Backoff::new(config.pipeline.retry_initial_ms);
    let mut restarted = false;
    let outcome = loop {
        let checkpoint_before = metrics.status().checkpointed_position;
        let result = run_pipeline(config, from.take(), &metrics, &shutdown).await;
        if metrics.status().checkpointed_position != checkpoint_before {
            // It made progress: the next restart is not part of a failure streak.
            backoff = cdc::pipeline::Backoff::new(config.pipeline.retry_initial_ms);
        }
        match result {
            // The sink lost accepted work: start over from the stored position.
            // A transient error while setting up again (reading the position, say) is retried too.
            Err(e) if (e.is_restart() || (restarted && e.is_transient())) && !shutdown.is_cancelled() => {
                restarted = true;
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Restarting the pipeline from the stored position");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => break Ok(PipelineOutcome::Stopped),
                }
            }
            other => break other,
        }
    };
    metrics.set_phase("stopped");
    shutdown.cancel();
    if let Some(h) = http {
        let _ = h.await;
    }
    match outcome? {
        PipelineOutcome::Stopped => tracing::info!("Stopped cleanly"),
        PipelineOutcome::SourceEnded => tracing::info!("Source has no more changes; stopped"),
    }
    Ok(())
}

/// One pipeline from the stored (or `--from`) position until it ends.
async fn run_pipeline(
    config: &Config,
    from: Option<&str>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Result<PipelineOutcome, CdcError> {
    // The sink opens first: one that keeps positions itself fences older instances before
    // the position is read.
    let mut sink = sinks::build(config)?;
    open_sink(sink.as_mut(), shutdown, config.pipeline.retry_initial_ms).await?;
    let store = position_store(config)?;
    let start = match from {
        Some(text) => {
            let p = parse_position(text)?;
            store.reset(&p).await?;
            tracing::info!(position = %p, "Starting from --from position (stored position reset)");
            Some(p)
        }
        None => {
            let p = store.load().await?;
            match &p {
                Some(p) => {
                    tracing::info!(position = %p, store = %store.describe(), "Resuming from stored position")
                }
                None => tracing::info!(store = %store.describe(), "No stored position"),
            }
            p
        }
    };
    let source = sources::build(config)?;
    tracing::info!(sink = config.sink.kind(), "Pipeline starting");
    let pipeline = Pipeline {
        source,
        sink,
        store,
        config: config.pipeline.clone(),
        metrics: metrics.clone(),
        shutdown: shutdown.clone(),
    };
    pipeline.run(start).await
}

/// Opens the sink, waiting with backoff while it is unreachable.
async fn open_sink(
    sink: &mut dyn cdc::pipeline::Sink,
    shutdown: &CancellationToken,
    retry_ms: u64,
) -> Result<(), CdcError> {
    let mut backoff = cdc::pipeline::Backoff::new(retry_ms);
    loop {
        match sink.open().await {
            Ok(()) => return Ok(()),
            Err(e) if e.is_transient() && !shutdown.is_cancelled() => {
                let wait = backoff.next_wait();
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "Cannot open the sink; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.cancelled() => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
}

fn spawn_signal_handler(shutdown: CancellationToken) {
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
            tracing::warn!("Cannot install signal handlers; stop with SIGKILL");
            return;
        };
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        tracing::info!("Shutdown requested: draining, flushing, checkpointing (signal again to exit at once)");
        shutdown.cancel();
        // `timeout` and some supervisors deliver one stop twice (to the process and to its
        // group): a second signal within a second is the same request.
        let first = std::time::Instant::now();
        loop {
            tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
            if first.elapsed() > std::time::Duration::from_secs(1) {
                break;
            }
        }
        eprintln!("cdc: second signal, exiting without a final checkpoint");
        std::process::exit(130);
    });
}

async fn check(config: &Config) -> anyhow::Result<()> {
    println!("PASS config: {} parsed and valid", config.name);
    let store = position_store(config)?;
    match store.load().await {
        Ok(Some(p)) => println!("PASS positions: {} holds {p}", store.describe()),
        Ok(None) => println!("PASS positions: {} is empty (a new pipeline)", store.describe()),
        Err(e) => {
            println!("FAIL positions: {e}");
            anyhow::bail!("check failed");
        }
    }
    let mut report = sources::check(config).await;
    if let cdc::config::SinkConfig::Kafka(k) = &config.sink
        && let Some(registry) = &k.schema_registry
    {
        report.push(cdc::sinks::kafka::registry::check(registry).await);
    }
    match &config.sink {
        cdc::config::SinkConfig::Postgres(d) => report.extend(cdc::sinks::postgres::check(d).await),
        cdc::config::SinkConfig::Mysql(d) => report.extend(cdc::sinks::mysql::check(d).await),
        _ => {}
    }
    let mut failed = false;
    for item in &report {
        println!("{item}");
        failed |= item.is_fail();
    }
    if failed {
        anyhow::bail!("check failed: fix the FAIL items above");
    }
    Ok(())
}

async fn show_position(config: &Config) -> anyhow::Result<()> {
    let store = position_store(config)?;
    let position = if let cdc::config::StoreKind::File = config.positions.store {
        match FilePositionStore::read(&config.positions.path)? {
            None => None,
            Some((position, saved_at_ms, name)) => {
                let age = (cdc::model::now_ms() - saved_at_ms).max(0) as f64 / 1000.0;
                println!("position: {position}\nsaved by: {name}\nsaved: {age:.1} s ago");
                Some(position)
            }
        }
    } else {
        let position = store.load().await?;
        if let Some(p) = &position {
            println!("position: {p}\nstored in: {}", store.describe());
        }
        position
    };
    let Some(position) = position else {
        println!("no stored position in {}", store.describe());
        return Ok(());
    };
    match sources::current_position(config).await {
        Ok(Some(current)) => println!("source now: {current}\nbehind: {}", sources::describe_gap(&position, &current)),
        Ok(None) => {}
        Err(e) => println!("source now: unknown ({e})"),
    }
    Ok(())
}

fn inspect_binlog(files: &[PathBuf], from_pos: Option<u64>, stop_pos: Option<u64>, name: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let ctx = cdc::format::debezium::EnvelopeContext { name: name.to_string(), now_us: cdc::model::now_us() };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut buf = Vec::with_capacity(1 << 16);
    for file in files {
        let mut write_error = None;
        let summary = sources::mysql::file::decode_file(file, from_pos, stop_pos, |batch| {
            buf.clear();
            for event in &batch.events {
                cdc::format::debezium::write_envelope(&mut buf, event, &ctx);
                buf.push(b'\n');
            }
            if let Err(e) = out.write_all(&buf) {
                write_error.get_or_insert(e);
            }
        })
        .map_err(|e| {
            CdcError::definite(
                format!("{}: {e}", file.display()),
                "check that the file is a complete MySQL/MariaDB binlog",
            )
        })?;
        if let Some(e) = write_error {
            anyhow::bail!("cannot write to standard output: {e}");
        }
        tracing::info!(file = %file.display(), events = summary.events, server = %summary.server_version, "Decoded binlog file");
    }
    out.flush()?;
    Ok(())
}
