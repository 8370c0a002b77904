//! `chorus-hub`: parse config, start telemetry, build the node, serve until SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chorus_hub::config::{load_file, validate::validate};
use chorus_hub::listener::FdBudgetListener;
use chorus_hub::{genconfig, limits, server, Node, NodeParts};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chorus-hub",
    version,
    about = "Centrifugo-compatible WebSocket hub"
)]
struct Cli {
    /// Config file (JSON, YAML or TOML, by extension), Centrifugo v6 keys.
    #[arg(short, long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write a starter config with fresh secrets.
    Genconfig,
    /// Check a config and exit.
    Checkconfig,
}

/// How long a starting hub waits for its Kafka consumers' history replay.
const CONSUMER_READY_LIMIT: Duration = Duration::from_secs(30);

fn main() -> std::process::ExitCode {
    chorus_runtime::process::exit("chorus-hub", real_main())
}

fn real_main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Cmd::Genconfig) => {
            let path = cli.config.unwrap_or_else(|| PathBuf::from("config.json"));
            if path.exists() {
                anyhow::bail!("{} exists already; not overwriting it", path.display());
            }
            std::fs::write(&path, genconfig::render(&genconfig::starter(), &path)?)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {}", path.display());
            Ok(())
        }
        Some(Cmd::Checkconfig) => {
            let path = cli.config.context("checkconfig needs --config FILE")?;
            let loaded = load_file(&path, std::env::vars())?;
            for w in validate(&loaded.config)? {
                println!("warning: {w}");
            }
            for k in loaded.unknown_keys {
                println!("warning: unknown key {k}");
            }
            println!("{} is valid", path.display());
            Ok(())
        }
        None => serve(cli.config),
    }
}

fn serve(path: Option<PathBuf>) -> anyhow::Result<()> {
    let loaded = match &path {
        Some(p) => load_file(p, std::env::vars())?,
        None => chorus_hub::config::load_str(
            "{}",
            chorus_hub::config::Format::Json,
            "(defaults)",
            std::env::vars(),
        )?,
    };
    let warnings = validate(&loaded.config)?;
    chorus_runtime::process::init_logging(
        "chorus_hub",
        &loaded.config.log.level,
        &loaded.config.log.format,
    );
    for w in warnings {
        tracing::warn!("{w}");
    }
    for k in &loaded.unknown_keys {
        tracing::warn!(key = %k, "unknown config key ignored");
    }
    if !loaded.env_overrides.is_empty() {
        tracing::info!(vars = ?loaded.env_overrides, "config overridden from environment");
    }
    let config = loaded.config;
    let budget = limits::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async move {
        let host = if config.http_server.address.is_empty() {
            "0.0.0.0".to_owned()
        } else {
            config.http_server.address.clone()
        };
        let addr: SocketAddr = format!("{host}:{}", config.http_server.port)
            .parse()
            .with_context(|| format!("http_server.address {host:?} is not an IP address"))?;
        let grace = config.shutdown.timeout.0;
        let engine = chorus_hub::engine::build(&config).await?;
        let node = Node::new(
            config,
            NodeParts {
                broker: engine.broker,
                presence: engine.presence,
                revoked: engine.revoked,
                fd_connection_budget: budget.connections,
                ..Default::default()
            },
        )?;
        if let Some(link) = &engine.link {
            link.watch(node.metrics.clone(), node.config.engine.redis.io_timeout.0);
        }
        node.start_engine().await?;
        tracing::info!(
            open_files = budget.limit,
            max_connections = node.max_connections,
            "open-files limit raised; connections capped accordingly"
        );
        // Consumers first: in chat-event mode they rebuild recent history, and clients that
        // come back after a restart should find it. A broker that cannot be reached does not
        // hold the port closed; the hub then serves degraded and catches up later.
        let consumers = chorus_hub::consumer::start(&node)?;
        if !chorus_hub::consumer::wait_ready(&consumers, CONSUMER_READY_LIMIT).await {
            tracing::warn!(
                limit = ?CONSUMER_READY_LIMIT,
                "kafka consumers still replaying; opening the port anyway"
            );
        }
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?;
        let listener = FdBudgetListener::new(
            tcp,
            budget.sockets,
            node.metrics.connections_refused.clone(),
        );
        let internal_port = node.config.http_server.internal_port;
        if internal_port != 0 {
            let ihost = match node.config.http_server.internal_address.as_str() {
                "" => host.as_str(),
                a => a,
            };
            let iaddr: SocketAddr =
                format!("{ihost}:{internal_port}")
                    .parse()
                    .with_context(|| {
                        format!("http_server.internal_address {ihost:?} is not an IP address")
                    })?;
            let internal = tokio::net::TcpListener::bind(iaddr)
                .await
                .with_context(|| format!("binding {iaddr}"))?;
            tracing::info!(%iaddr, "server api, /health and /metrics on the internal port");
            tokio::spawn(server::serve_internal(node.clone(), internal));
        }
        tracing::info!(%addr, engine = %node.config.engine.kind, "chorus-hub listening");
        let shutdown = node.shutdown.clone();
        tokio::spawn(async move {
            chorus_runtime::process::signalled().await;
            tracing::info!("shutting down: closing clients with reconnect advice");
            shutdown.cancel();
        });
        server::run(node, listener, grace.max(Duration::from_millis(100)))
            .await
            .context("serving")?;
        // Each consumer commits its stored offsets as it stops.
        for c in consumers {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.task).await;
        }
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}
