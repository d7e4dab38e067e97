//! `sportello-bench gateway`: a gateway process (`sportello worker
//! gateway`, started as a child) serving ROOMS rooms with two WebSockets
//! each; the operator of every room sends echo messages that the gateway
//! relays through RabbitMQ to the citizen. Prints the relay latency
//! (p50/p99, send to receipt, both ends in this process) and the gateway's
//! resident memory, each next to its target.

use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use super::{bench_suffix, BenchBroker, BenchDatabase, ScratchDatabase, ScratchVhost};
use sportello::config::Settings;
use sportello::domain::video::Role;
use sportello::store;

const P99_TARGET_MS: f64 = 20.0;
const RSS_TARGET_MIB: f64 = 300.0;

#[derive(Debug, clap::Args)]
pub struct GatewayBench {
    /// Rooms (two WebSockets each).
    #[arg(long, default_value_t = 1000)]
    rooms: usize,
    /// Echo messages per room.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Milliseconds between a room's echoes; rooms start evenly spread over
    /// one interval, so 1,000 rooms offer 1,000 messages a second. 0 sends
    /// every room's echoes at once, which measures the queue, not the relay.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    #[command(flatten)]
    database: BenchDatabase,
    #[command(flatten)]
    broker: BenchBroker,
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn run(bench: GatewayBench) -> anyhow::Result<()> {
    let suffix = bench_suffix();
    let database = ScratchDatabase::create(&bench.database.database_url, &suffix).await?;
    let mut vhost = ScratchVhost::create(&bench.broker, &suffix).await?;
    // The gateway runs as its production user, `sportello-gateway`, with
    // its permissions: what is measured is what production can do.
    let provisioned = vhost.provision_users().await;
    let result = match provisioned.and_then(|()| vhost.user_url("sportello-gateway")) {
        Ok(gateway_url) => measure(&bench, &database.url, &vhost.amqp_url, &gateway_url).await,
        Err(error) => Err(error),
    };
    vhost.remove().await?;
    database.remove().await?;
    result
}

/// `amqp_url` (the bench's own user) declares the topology; the gateway
/// connects with `gateway_url` alone.
async fn measure(
    bench: &GatewayBench,
    database_url: &str,
    amqp_url: &str,
    gateway_url: &str,
) -> anyhow::Result<()> {
    let settings = Settings {
        database_url: database_url.to_owned(),
        amqp_url: amqp_url.to_owned(),
        ..Settings::local_defaults()
    };
    let pool = sportello::app::migrate(&settings).await?;
    sportello::app::declare_topology(&settings).await?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(crate::sportello_binary()?)
        .args(["worker", "gateway"])
        .env("DATABASE_URL", database_url)
        .env("GATEWAY_AMQP_URL", gateway_url)
        .env("GATEWAY_ADDRESS", format!("127.0.0.1:{port}"))
        .env("METRICS_ADDRESS", "")
        .env("DATABASE_POOL_SIZE", "20")
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("127.0.0.1:{port}");
    let ready = Instant::now();
    while tokio::net::TcpStream::connect(&base).await.is_err() {
        anyhow::ensure!(
            ready.elapsed() < Duration::from_secs(30),
            "the gateway did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let links = sportello::appointments::BookingSettings::from_settings(&settings);
    println!("preparing {} rooms ...", bench.rooms);
    let mut rooms = Vec::with_capacity(bench.rooms);
    let starts_at = chrono::Utc::now();
    let mut conn = pool.acquire().await?;
    for i in 0..bench.rooms {
        let id = Uuid::now_v7();
        // Every room already started (one second apart): a room opens only
        // 15 minutes before its slot, and 1,000 rooms span more than that.
        let slot = starts_at - chrono::Duration::seconds(i as i64);
        sqlx::query("INSERT INTO appointment_slots (office_aoo, desk_kind, mode, starts_at, capacity, taken) VALUES ('4902', 'conto_assicurativo', 'video', $1, 1, 1)")
            .bind(slot).execute(&mut *conn).await?;
        sqlx::query("INSERT INTO appointments (id, subject_tax_code, booked_by, booked_by_key, channel, office_aoo, desk_kind, mode, starts_at, ends_at, state, hold_expires_at, phone, notes, request_sha256, correlation_id, created_at, updated_at, confirmed_at) VALUES ($1, 'RSSMRA85T10A562S', '{}'::jsonb, 'bench', 'web', '4902', 'conto_assicurativo', 'video', $2, $3, 'confirmed', now(), '+393331234567', 'bench', 'x', 'bench', now(), now(), now())")
            .bind(id).bind(slot).bind(slot + chrono::Duration::hours(2)).execute(&mut *conn).await?;
        let record = store::appointments::get(&mut conn, id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("appointment"))?;
        store::video::ensure(&mut conn, &record).await?;
        sqlx::query("UPDATE video_rooms SET admitted = true WHERE appointment_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        let mut passes = Vec::new();
        for role in [Role::Operator, Role::Citizen] {
            let principal = sportello::contract::Principal::Operator {
                operator_id: "E49020001".into(),
                office: "4902".into(),
                on_behalf_of: None,
            };
            let key = store::video::open_pass(
                &mut conn,
                id,
                role,
                &principal,
                slot + chrono::Duration::hours(3),
            )
            .await?;
            let token = links.room_link(id, role, record.ends_at);
            let token = token
                .rsplit_once("/stanza/")
                .map(|(_, t)| t.to_owned())
                .unwrap_or_default();
            passes.push((token, key));
        }
        rooms.push((id, passes));
    }
    drop(conn);
    println!("opening {} WebSockets ...", bench.rooms * 2);
    let mut sockets: Vec<(Uuid, Socket, Socket)> = Vec::with_capacity(bench.rooms);
    for (id, passes) in &rooms {
        let mut pair = Vec::new();
        for (token, key) in passes {
            let mut request = format!("ws://{base}/stanza/{token}/ws").into_client_request()?;
            request
                .headers_mut()
                .insert("cookie", format!("sportello_stanza={key}").parse()?);
            let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
            // The welcome.
            socket.next().await;
            pair.push(socket);
        }
        let citizen = pair.pop().ok_or_else(|| anyhow::anyhow!("socket"))?;
        let operator = pair.pop().ok_or_else(|| anyhow::anyhow!("socket"))?;
        sockets.push((*id, operator, citizen));
    }
    let rss = resident_mib(child.id().unwrap_or_default());
    let interval = Duration::from_millis(bench.interval_ms);
    println!(
        "relaying {} echoes, {} ...",
        bench.rooms * bench.rounds,
        if bench.interval_ms == 0 {
            "all at once".to_owned()
        } else {
            format!(
                "{:.0} messages/s offered",
                bench.rooms as f64 / interval.as_secs_f64()
            )
        }
    );
    let started = Instant::now();
    let rooms = bench.rooms.max(1) as u32;
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(index, (id, mut operator, mut citizen))| {
            let rounds = bench.rounds;
            // This room's place in the interval: rooms do not all speak at once.
            let offset = interval.mul_f64(f64::from(index as u32 % rooms) / f64::from(rooms));
            tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(rounds);
                let mut next = tokio::time::Instant::now() + offset;
                let mut ended = "all rounds relayed".to_owned();
                let mut last_told = String::new();
                'rounds: for _ in 0..rounds {
                    // Read the operator's socket while waiting, as a browser
                    // does, so what the gateway sends it is taken in.
                    let wait = tokio::time::sleep_until(next);
                    tokio::pin!(wait);
                    loop {
                        tokio::select! {
                            _ = &mut wait => break,
                            message = operator.next() => match message {
                                Some(Ok(_)) => continue,
                                other => {
                                    ended = format!("operator's socket ended: {other:?}");
                                    break 'rounds;
                                }
                            },
                        }
                    }
                    next += interval;
                    let sent = Instant::now();
                    let message = json!({"type": "echo", "room": id, "payload": 1}).to_string();
                    if let Err(error) = operator.send(Message::Text(message.into())).await {
                        ended = format!("operator's send failed: {error}");
                        break;
                    }
                    loop {
                        match tokio::time::timeout(Duration::from_secs(10), citizen.next()).await {
                            Ok(Some(Ok(Message::Text(text)))) if text.contains("\"echo\"") => {
                                latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                                break;
                            }
                            Ok(Some(Ok(Message::Text(text)))) => last_told = text.to_string(),
                            Ok(Some(Ok(_))) => continue,
                            Ok(other) => {
                                ended = format!("citizen's socket ended: {other:?}");
                                break 'rounds;
                            }
                            Err(_) => {
                                ended = format!(
                                    "no echo within 10 s (the citizen was last told: {last_told})"
                                );
                                break 'rounds;
                            }
                        }
                    }
                }
                (latencies, ended, operator, citizen)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut kept = Vec::new();
    let mut endings = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks {
        let (l, ended, o, c) = task.await?;
        latencies.extend(l);
        *endings.entry(ended).or_default() += 1;
        kept.push((o, c));
    }
    for (ended, rooms) in &endings {
        println!("rooms ended so: {rooms:>5}  {ended}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rss_after = resident_mib(child.id().unwrap_or_default());
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    let (p50, p99) = (pct(0.50), pct(0.99));
    println!(
        "gateway bench: {} rooms, {} WebSockets, {} echoes relayed in {elapsed:.1} s ({:.0}/s)",
        bench.rooms,
        bench.rooms * 2,
        latencies.len(),
        latencies.len() as f64 / elapsed
    );
    println!("relay latency (send -> browser, through RabbitMQ): p50 {p50:.2} ms, p99 {p99:.2} ms; target p99 < {P99_TARGET_MS} ms ({:.0}% of it)", p99 / P99_TARGET_MS * 100.0);
    let peak = rss.max(rss_after);
    println!("gateway resident memory: {rss:.0} MiB with every socket open, {rss_after:.0} MiB after relaying; target < {RSS_TARGET_MIB} MiB ({:.0}% of it)", peak / RSS_TARGET_MIB * 100.0);
    drop(kept);
    let _ = child.kill().await;
    pool.close().await;
    Ok(())
}

/// VmRSS of a process, in MiB.
fn resident_mib(pid: u32) -> f64 {
    super::process_memory_kib(pid, "VmRSS").map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}
