//! High availability: alert managers started with a cluster listen
//! address find each other, replicate silences and the notification log,
//! and take turns to notify by their position in the cluster, as
//! Alertmanager's cluster does (its wait and dedup stages). The messages
//! are osprey's own, specified in `docs/format/cluster.md`: length-prefixed
//! JSON frames over TCP, one request and one reply per connection.
//!
//! - Membership: every probe interval each known address gets a `ping`;
//!   the `ack` names the peer and the peers it knows. A peer that has not
//!   answered for `max(5 × probe-interval, 2 × probe-timeout)` is failed:
//!   it leaves the member list (so positions move up) and is probed only
//!   every reconnect interval until the reconnect timeout forgets it.
//! - State: a local change (a silence set or expired, a notification
//!   logged) is queued and sent as an `update` to every live peer within a
//!   gossip interval; every push-pull interval, and when a peer is first
//!   seen, a `full_state` exchange merges both sides' whole state (newest
//!   wins), which repairs any update that was lost.
//! - Settling: like Alertmanager, notifications wait until the member
//!   count held still for three checks ten gossip intervals apart, or the
//!   settle timeout passed.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::nflog::{EntryRecord, Nflog, NflogEntry, NflogKey};
use crate::silence::{Silence, SilenceRecord, Silences};

/// How to join a cluster: Alertmanager's `--cluster.*` flags.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Where peers reach this one (`--cluster.listen-address`).
    pub listen_address: SocketAddr,
    /// The address told to peers (`--cluster.advertise-address`); default
    /// the listen address (a peer replaces an unspecified host with the
    /// address the connection came from).
    pub advertise_address: Option<String>,
    /// This peer's name (`--cluster.peer-name`); default a random ULID.
    pub peer_name: Option<String>,
    /// Initial peers, `host:port` (`--cluster.peer`, repeatable).
    pub peers: Vec<String>,
    /// Wait per position before notifying (`--cluster.peer-timeout`, 15s).
    pub peer_timeout: Duration,
    /// Most frequent update sending (`--cluster.gossip-interval`, 200ms).
    pub gossip_interval: Duration,
    /// Full-state exchanges (`--cluster.pushpull-interval`, 1m).
    pub pushpull_interval: Duration,
    /// Connect, read and write timeout of update and full-state exchanges
    /// (`--cluster.tcp-timeout`, 10s).
    pub tcp_timeout: Duration,
    /// Timeout of a ping exchange (`--cluster.probe-timeout`, 500ms).
    pub probe_timeout: Duration,
    /// How often peers are pinged (`--cluster.probe-interval`, 1s).
    pub probe_interval: Duration,
    /// Longest wait for the member count to settle before notifying
    /// (`--cluster.settle-timeout`, 1m).
    pub settle_timeout: Duration,
    /// How often a failed peer is tried (`--cluster.reconnect-interval`, 10s).
    pub reconnect_interval: Duration,
    /// When a failed peer is forgotten (`--cluster.reconnect-timeout`, 6h).
    pub reconnect_timeout: Duration,
    /// Sent with every message; messages with another label are dropped
    /// (`--cluster.label`).
    pub label: String,
}

impl ClusterOptions {
    /// Alertmanager's defaults, listening on `listen_address`.
    pub fn new(listen_address: SocketAddr) -> ClusterOptions {
        ClusterOptions {
            listen_address,
            advertise_address: None,
            peer_name: None,
            peers: Vec::new(),
            peer_timeout: Duration::from_secs(15),
            gossip_interval: Duration::from_millis(200),
            pushpull_interval: Duration::from_secs(60),
            tcp_timeout: Duration::from_secs(10),
            probe_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_secs(1),
            settle_timeout: Duration::from_secs(60),
            reconnect_interval: Duration::from_secs(10),
            reconnect_timeout: Duration::from_secs(6 * 3600),
            label: String::new(),
        }
    }
}

/// The largest payload a frame may carry (`docs/format/cluster.md`):
/// a full state of tens of thousands of silences and log entries fits
/// with room to spare, and a reader never allocates more on a peer's word.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 20;
const MAGIC: &[u8; 4] = b"OSPC";
const VERSION: u8 = 1;
const HEADER_BYTES: usize = 10;

/// The kinds of message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    Ping,
    Ack,
    Update,
    FullState,
    Leave,
}

impl MessageType {
    fn code(self) -> u8 {
        match self {
            MessageType::Ping => 1,
            MessageType::Ack => 2,
            MessageType::Update => 3,
            MessageType::FullState => 4,
            MessageType::Leave => 5,
        }
    }

    fn from_code(code: u8) -> Option<MessageType> {
        match code {
            1 => Some(MessageType::Ping),
            2 => Some(MessageType::Ack),
            3 => Some(MessageType::Update),
            4 => Some(MessageType::FullState),
            5 => Some(MessageType::Leave),
            _ => None,
        }
    }
}

/// A peer as messages name it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub address: String,
}

#[derive(Default, Serialize, Deserialize)]
struct Payload {
    #[serde(default)]
    label: String,
    #[serde(default)]
    from: Member,
    #[serde(default)]
    members: Vec<Member>,
    #[serde(default)]
    silences: Vec<SilenceRecord>,
    #[serde(default)]
    nflog: Vec<EntryRecord>,
}

/// A decoded message.
pub struct Message {
    kind: MessageType,
    payload: Payload,
}

impl Message {
    pub fn kind(&self) -> MessageType {
        self.kind
    }

    pub fn label(&self) -> &str {
        &self.payload.label
    }

    pub fn from(&self) -> &Member {
        &self.payload.from
    }

    pub fn members(&self) -> &[Member] {
        &self.payload.members
    }

    /// The silences carried, those whose matchers do not parse left out.
    pub fn silences(&self) -> Vec<Silence> {
        self.payload
            .silences
            .iter()
            .filter_map(|record| record.clone().into_silence().ok())
            .collect()
    }

    /// The log entries carried, those of unknown integrations left out.
    pub fn nflog(&self) -> Vec<(NflogKey, NflogEntry)> {
        self.payload
            .nflog
            .iter()
            .filter_map(|record| record.clone().into_known_entry())
            .collect()
    }

    /// The whole frame.
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec(&self.payload).unwrap_or_else(|_| b"{}".to_vec());
        let mut frame = Vec::with_capacity(HEADER_BYTES + body.len());
        frame.extend_from_slice(MAGIC);
        frame.push(VERSION);
        frame.push(self.kind.code());
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&body);
        frame
    }
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error)]
#[error("cluster message: {0}")]
pub struct FrameError(String);

/// Reads a frame header: the message type and the payload length.
fn decode_header(header: &[u8]) -> Result<(MessageType, usize), FrameError> {
    if header.len() < HEADER_BYTES {
        return Err(FrameError(format!(
            "{} bytes, shorter than the {HEADER_BYTES}-byte header",
            header.len()
        )));
    }
    if &header[..4] != MAGIC {
        return Err(FrameError("bad magic".to_string()));
    }
    if header[4] != VERSION {
        return Err(FrameError(format!("unknown version {}", header[4])));
    }
    let kind = MessageType::from_code(header[5])
        .ok_or_else(|| FrameError(format!("unknown message type {}", header[5])))?;
    let length = u32::from_be_bytes([header[6], header[7], header[8], header[9]]) as usize;
    if length > MAX_PAYLOAD_BYTES {
        return Err(FrameError(format!(
            "payload of {length} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit"
        )));
    }
    Ok((kind, length))
}

fn decode_payload(kind: MessageType, body: &[u8]) -> Result<Message, FrameError> {
    // serde would also take a struct as an array of its fields.
    if body.trim_ascii_start().first() != Some(&b'{') {
        return Err(FrameError("the payload is not a JSON object".to_string()));
    }
    let payload: Payload =
        serde_json::from_slice(body).map_err(|e| FrameError(format!("bad payload: {e}")))?;
    Ok(Message { kind, payload })
}

/// Decodes one whole frame (`docs/format/cluster.md`); nothing may follow
/// the payload.
pub fn decode_frame(bytes: &[u8]) -> Result<Message, FrameError> {
    let (kind, length) = decode_header(bytes)?;
    let body = &bytes[HEADER_BYTES..];
    if body.len() != length {
        return Err(FrameError(format!(
            "the header says {length} payload bytes, the frame has {}",
            body.len()
        )));
    }
    decode_payload(kind, body)
}

async fn read_frame(stream: &mut TcpStream) -> Result<(Message, usize), FrameError> {
    let mut header = [0u8; HEADER_BYTES];
    stream
        .read_exact(&mut header)
        .await
        .map_err(|e| FrameError(format!("reading the header: {e}")))?;
    let (kind, length) = decode_header(&header)?;
    // Grows as bytes arrive: a header alone does not reserve its length.
    let mut body = Vec::new();
    (&mut *stream)
        .take(length as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| FrameError(format!("reading the payload: {e}")))?;
    if body.len() != length {
        return Err(FrameError(format!(
            "the connection closed after {} of {length} payload bytes",
            body.len()
        )));
    }
    Ok((decode_payload(kind, &body)?, HEADER_BYTES + length))
}

/// The cluster state as `/api/v2/status` shows it.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    pub name: String,
    /// `ready` or `settling`.
    pub status: &'static str,
    /// Every live member, this one included, sorted by name.
    pub peers: Vec<Member>,
}

/// A known address and what answered there.
struct Known {
    /// The name that last answered here.
    name: Option<String>,
    /// When an exchange with it last succeeded.
    last_ok: Option<Instant>,
    /// When it was last probed.
    last_probe: Option<Instant>,
    /// When it became known.
    since: Instant,
    /// Given with `--cluster.peer`: never forgotten.
    seed: bool,
}

/// Changes made here, waiting for the next update.
#[derive(Default)]
struct Outbox {
    silences: HashMap<String, Silence>,
    nflog: HashMap<NflogKey, NflogEntry>,
}

#[derive(Default)]
struct Metrics {
    received: [AtomicU64; 2],
    received_bytes: [AtomicU64; 2],
    sent: [AtomicU64; 2],
    sent_bytes: [AtomicU64; 2],
    joined: AtomicU64,
    left: AtomicU64,
    reconnections: AtomicU64,
    reconnections_failed: AtomicU64,
}

fn metric_slot(kind: MessageType) -> Option<usize> {
    match kind {
        MessageType::Update => Some(0),
        MessageType::FullState => Some(1),
        MessageType::Ping | MessageType::Ack | MessageType::Leave => None,
    }
}

/// A running cluster membership; stops with [`Cluster::stop`].
pub struct Cluster {
    options: ClusterOptions,
    name: String,
    advertise: String,
    silences: Arc<Silences>,
    nflog: Arc<Nflog>,
    known: Mutex<BTreeMap<String, Known>>,
    /// The live peers' names at the last probe tick.
    live_names: Mutex<std::collections::BTreeSet<String>>,
    outbox: Mutex<Outbox>,
    outbox_ready: Notify,
    ready: AtomicBool,
    ready_notify: Notify,
    /// Set by [`Cluster::leave`]: requests get no answer any more.
    leaving: AtomicBool,
    metrics: Metrics,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    /// Binds the listen address and starts membership, gossip and
    /// settling on the current tokio runtime. Local changes to `silences`
    /// and `nflog` are sent to peers from now on.
    pub(crate) fn start(
        options: ClusterOptions,
        silences: Arc<Silences>,
        nflog: Arc<Nflog>,
    ) -> Result<Arc<Cluster>, String> {
        let listener = bind(options.listen_address)
            .map_err(|e| format!("--cluster.listen-address {}: {e}", options.listen_address))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("--cluster.listen-address: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("--cluster.listen-address: {e}"))?;
        let listener = TcpListener::from_std(listener)
            .map_err(|e| format!("--cluster.listen-address: {e}"))?;
        let advertise = options
            .advertise_address
            .clone()
            .unwrap_or_else(|| local.to_string());
        let name = options.peer_name.clone().unwrap_or_else(new_peer_name);
        let now = Instant::now();
        let known = options
            .peers
            .iter()
            .filter(|address| **address != advertise)
            .map(|address| {
                (
                    address.clone(),
                    Known {
                        name: None,
                        last_ok: None,
                        last_probe: None,
                        since: now,
                        seed: true,
                    },
                )
            })
            .collect();
        let cluster = Arc::new(Cluster {
            options,
            name,
            advertise,
            silences: silences.clone(),
            nflog: nflog.clone(),
            known: Mutex::new(known),
            live_names: Mutex::new(std::collections::BTreeSet::new()),
            outbox: Mutex::new(Outbox::default()),
            outbox_ready: Notify::new(),
            ready: AtomicBool::new(false),
            ready_notify: Notify::new(),
            leaving: AtomicBool::new(false),
            metrics: Metrics::default(),
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&cluster);
        silences.set_change_hook(Box::new(move |silence| {
            if let Some(cluster) = weak.upgrade() {
                lock(&cluster.outbox)
                    .silences
                    .insert(silence.id.clone(), silence.clone());
                cluster.outbox_ready.notify_one();
            }
        }));
        let weak = Arc::downgrade(&cluster);
        nflog.set_change_hook(Box::new(move |key, entry| {
            if let Some(cluster) = weak.upgrade() {
                lock(&cluster.outbox)
                    .nflog
                    .insert(key.clone(), entry.clone());
                cluster.outbox_ready.notify_one();
            }
        }));
        let tasks = vec![
            tokio::spawn(accept_loop(Arc::downgrade(&cluster), listener)),
            tokio::spawn(probe_loop(Arc::downgrade(&cluster))),
            tokio::spawn(gossip_loop(Arc::downgrade(&cluster))),
            tokio::spawn(pushpull_loop(Arc::downgrade(&cluster))),
            tokio::spawn(settle(Arc::downgrade(&cluster))),
        ];
        *lock(&cluster.tasks) = tasks;
        tracing::info!(name = %cluster.name, listen = %local, advertise = %cluster.advertise, peers = ?cluster.options.peers, "cluster started");
        Ok(cluster)
    }

    /// Tells every live peer that this one leaves, so they take it out of
    /// their member list at once rather than after failed pings; from now
    /// on requests get no answer. Waits at most the probe timeout.
    pub(crate) async fn leave(self: &Arc<Self>) {
        self.leaving.store(true, Ordering::SeqCst);
        let leave = Arc::new(Message {
            kind: MessageType::Leave,
            payload: self.payload(false),
        });
        let mut sends = Vec::new();
        for address in self.live_peers().into_values() {
            let cluster = self.clone();
            let leave = leave.clone();
            sends.push(tokio::spawn(async move {
                cluster
                    .exchange(&address, &leave, cluster.options.probe_timeout)
                    .await;
            }));
        }
        for send in sends {
            let _ = send.await;
        }
    }

    /// Stops every task and closes the listener.
    pub(crate) fn stop(&self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn peer_timeout(&self) -> Duration {
        self.options.peer_timeout
    }

    fn live_window(&self) -> Duration {
        (self.options.probe_interval * 5).max(self.options.probe_timeout * 2)
    }

    /// Live peers other than this one: name → the address that answered
    /// last.
    fn live_peers(&self) -> BTreeMap<String, String> {
        let now = Instant::now();
        let window = self.live_window();
        let mut best: BTreeMap<String, (String, Instant)> = BTreeMap::new();
        for (address, known) in lock(&self.known).iter() {
            let (Some(name), Some(last_ok)) = (&known.name, known.last_ok) else {
                continue;
            };
            if *name == self.name || now.duration_since(last_ok) > window {
                continue;
            }
            let newer = best.get(name).is_none_or(|(_, seen)| *seen < last_ok);
            if newer {
                best.insert(name.clone(), (address.clone(), last_ok));
            }
        }
        best.into_iter()
            .map(|(name, (address, _))| (name, address))
            .collect()
    }

    /// This peer's index among the sorted names of itself and its live
    /// peers (Alertmanager's `Peer.Position`).
    pub fn position(&self) -> usize {
        self.live_peers()
            .keys()
            .filter(|name| name.as_str() < self.name.as_str())
            .count()
    }

    pub fn status(&self) -> ClusterStatus {
        let mut peers: Vec<Member> = self
            .live_peers()
            .into_iter()
            .map(|(name, address)| Member { name, address })
            .collect();
        peers.push(Member {
            name: self.name.clone(),
            address: self.advertise.clone(),
        });
        peers.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterStatus {
            name: self.name.clone(),
            status: if self.ready.load(Ordering::SeqCst) {
                "ready"
            } else {
                "settling"
            },
            peers,
        }
    }

    /// Waits until the cluster settled or `deadline` (Alertmanager's
    /// gossip settle stage).
    pub(crate) async fn wait_ready(&self, deadline: Instant) {
        loop {
            let notified = self.ready_notify.notified();
            if self.ready.load(Ordering::SeqCst) {
                return;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => return,
            }
        }
    }

    fn payload(&self, with_members: bool) -> Payload {
        Payload {
            label: self.options.label.clone(),
            from: Member {
                name: self.name.clone(),
                address: self.advertise.clone(),
            },
            members: if with_members {
                self.live_peers()
                    .into_iter()
                    .map(|(name, address)| Member { name, address })
                    .collect()
            } else {
                Vec::new()
            },
            silences: Vec::new(),
            nflog: Vec::new(),
        }
    }

    fn full_state(&self) -> Message {
        let mut payload = self.payload(true);
        payload.silences = self
            .silences
            .list()
            .iter()
            .map(SilenceRecord::from_silence)
            .collect();
        payload.nflog = self
            .nflog
            .entries()
            .iter()
            .map(|(key, entry)| EntryRecord::from_entry(key, entry))
            .collect();
        Message {
            kind: MessageType::FullState,
            payload,
        }
    }

    /// Applies the silences and log entries of a message.
    fn merge(&self, message: &Message) {
        let now = crate::manager::now_ms();
        let silences = message.silences();
        if !silences.is_empty()
            && let Err(error) = self.silences.merge(silences, now)
        {
            tracing::error!(%error, "merging a peer's silences failed");
        }
        let entries = message.nflog();
        if !entries.is_empty()
            && let Err(error) = self.nflog.merge(entries, now)
        {
            tracing::error!(%error, "merging a peer's notification log failed");
        }
    }

    /// Records that `member` answered or called.
    fn saw(&self, member: &Member) {
        if member.name.is_empty() || member.name == self.name || member.address.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut known = lock(&self.known);
        let entry = known.entry(member.address.clone()).or_insert(Known {
            name: None,
            last_ok: None,
            last_probe: None,
            since: now,
            seed: false,
        });
        entry.name = Some(member.name.clone());
        entry.last_ok = Some(now);
    }

    /// A peer that said it leaves: no longer live at any of its
    /// addresses (they are still pinged, to see it come back).
    fn forget_live(&self, name: &str) {
        for known in lock(&self.known).values_mut() {
            if known.name.as_deref() == Some(name) {
                known.last_ok = None;
            }
        }
    }

    /// Adds the addresses a peer knows of that are new here; they count
    /// as live once they answer a ping.
    fn learn(&self, members: &[Member]) {
        let now = Instant::now();
        let mut known = lock(&self.known);
        for member in members {
            if member.name == self.name
                || member.address == self.advertise
                || member.address.is_empty()
                || known.contains_key(&member.address)
            {
                continue;
            }
            known.insert(
                member.address.clone(),
                Known {
                    name: None,
                    last_ok: None,
                    last_probe: None,
                    since: now,
                    seed: false,
                },
            );
        }
    }

    fn count_received(&self, kind: MessageType, bytes: usize) {
        if let Some(slot) = metric_slot(kind) {
            self.metrics.received[slot].fetch_add(1, Ordering::Relaxed);
            self.metrics.received_bytes[slot].fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    fn count_sent(&self, kind: MessageType, bytes: usize) {
        if let Some(slot) = metric_slot(kind) {
            self.metrics.sent[slot].fetch_add(1, Ordering::Relaxed);
            self.metrics.sent_bytes[slot].fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }

    /// One exchange with `address`: the reply, or `None` when it failed.
    async fn exchange(
        self: &Arc<Self>,
        address: &str,
        request: &Message,
        timeout: Duration,
    ) -> Option<Message> {
        let frame = request.encode();
        let attempt = async {
            let mut stream = TcpStream::connect(address)
                .await
                .map_err(|e| FrameError(format!("connecting: {e}")))?;
            stream
                .write_all(&frame)
                .await
                .map_err(|e| FrameError(format!("writing: {e}")))?;
            read_frame(&mut stream).await
        };
        let result = match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(FrameError(format!("no answer within {timeout:?}"))),
        };
        match result {
            Ok((reply, bytes)) => {
                self.count_sent(request.kind, frame.len());
                if reply.label() != self.options.label {
                    tracing::debug!(%address, "a peer of another cluster label answered");
                    return None;
                }
                self.count_received(reply.kind, bytes);
                let mut from = reply.from().clone();
                from.address = address.to_string();
                // The reply came from this address, whatever it advertises.
                self.saw(&from);
                self.learn(reply.members());
                Some(reply)
            }
            Err(error) => {
                tracing::debug!(%address, kind = ?request.kind, %error, "cluster exchange failed");
                None
            }
        }
    }

    /// A full-state exchange with one peer: sends ours, merges theirs.
    async fn push_pull(self: &Arc<Self>, address: &str) {
        let request = self.full_state();
        if let Some(reply) = self
            .exchange(address, &request, self.options.tcp_timeout)
            .await
            && reply.kind == MessageType::FullState
        {
            self.merge(&reply);
        }
    }

    /// Answers one connection.
    async fn serve(self: Arc<Self>, mut stream: TcpStream, source: SocketAddr) {
        let timeout = self.options.tcp_timeout;
        let handled = tokio::time::timeout(timeout, async {
            let (request, bytes) = match read_frame(&mut stream).await {
                Ok(read) => read,
                Err(error) => {
                    tracing::debug!(%source, %error, "refused a cluster message");
                    return;
                }
            };
            if self.leaving.load(Ordering::SeqCst) {
                return;
            }
            if request.label() != self.options.label {
                tracing::debug!(%source, label = request.label(), "dropped a message of another cluster label");
                return;
            }
            self.count_received(request.kind, bytes);
            let mut from = request.from().clone();
            from.address = substitute_host(&from.address, source);
            if request.kind == MessageType::Leave {
                self.forget_live(&from.name);
            } else {
                self.saw(&from);
                self.learn(request.members());
            }
            let reply = match request.kind {
                MessageType::Ping | MessageType::Ack | MessageType::Leave => Message {
                    kind: MessageType::Ack,
                    payload: self.payload(true),
                },
                MessageType::Update => {
                    self.merge(&request);
                    Message {
                        kind: MessageType::Ack,
                        payload: self.payload(false),
                    }
                }
                MessageType::FullState => {
                    self.merge(&request);
                    self.full_state()
                }
            };
            let frame = reply.encode();
            if stream.write_all(&frame).await.is_ok() {
                self.count_sent(reply.kind, frame.len());
            }
        })
        .await;
        if handled.is_err() {
            tracing::debug!(%source, "a cluster connection timed out");
        }
    }

    /// The cluster's metrics, Alertmanager's names.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        let live = self.live_peers();
        let failed = {
            let known = lock(&self.known);
            let now = Instant::now();
            let window = self.live_window();
            let mut failed_names: Vec<&String> = known
                .values()
                .filter_map(|k| {
                    let name = k.name.as_ref()?;
                    let stale = k
                        .last_ok
                        .is_none_or(|last| now.duration_since(last) > window);
                    (stale && !live.contains_key(name) && *name != self.name).then_some(name)
                })
                .collect();
            failed_names.sort();
            failed_names.dedup();
            failed_names.len()
        };
        let m = &self.metrics;
        let mut family = |name: &str, help: &str, kind: &str, samples: Vec<(String, u64)>| {
            let family = name.strip_suffix("_total").unwrap_or(name);
            out.push_str(&format!("# HELP {family} {help}\n# TYPE {family} {kind}\n"));
            for (labels, value) in samples {
                out.push_str(&format!("{name}{labels} {value}\n"));
            }
        };
        family(
            "alertmanager_cluster_members",
            "Number indicating current number of members in cluster.",
            "gauge",
            vec![(String::new(), live.len() as u64 + 1)],
        );
        family(
            "alertmanager_peer_position",
            "Position the Alertmanager instance believes it's in. The position determines a peer's behavior in the cluster.",
            "gauge",
            vec![(String::new(), self.position() as u64)],
        );
        family(
            "alertmanager_cluster_failed_peers",
            "Number indicating the current number of failed peers in the cluster.",
            "gauge",
            vec![(String::new(), failed as u64)],
        );
        family(
            "alertmanager_cluster_health_score",
            "Health score of the cluster. Lower values are better and zero means 'totally healthy'.",
            "gauge",
            vec![(String::new(), 0)],
        );
        family(
            "alertmanager_cluster_peer_info",
            "A metric with a constant '1' value labeled by peer name.",
            "gauge",
            vec![(format!("{{peer={:?}}}", self.name), 1)],
        );
        family(
            "alertmanager_cluster_settled",
            "Whether the cluster settled (osprey): notifications wait for it.",
            "gauge",
            vec![(String::new(), u64::from(self.ready.load(Ordering::SeqCst)))],
        );
        let by_type = |counters: &[AtomicU64; 2]| -> Vec<(String, u64)> {
            ["update", "full_state"]
                .iter()
                .zip(counters.iter())
                .map(|(kind, counter)| {
                    (
                        format!("{{msg_type=\"{kind}\"}}"),
                        counter.load(Ordering::Relaxed),
                    )
                })
                .collect()
        };
        family(
            "alertmanager_cluster_messages_received_total",
            "Total number of cluster messages received.",
            "counter",
            by_type(&m.received),
        );
        family(
            "alertmanager_cluster_messages_received_size_total",
            "Total size of cluster messages received.",
            "counter",
            by_type(&m.received_bytes),
        );
        family(
            "alertmanager_cluster_messages_sent_total",
            "Total number of cluster messages sent.",
            "counter",
            by_type(&m.sent),
        );
        family(
            "alertmanager_cluster_messages_sent_size_total",
            "Total size of cluster messages sent.",
            "counter",
            by_type(&m.sent_bytes),
        );
        let queued = {
            let outbox = lock(&self.outbox);
            outbox.silences.len() + outbox.nflog.len()
        };
        family(
            "alertmanager_cluster_messages_queued",
            "Number of cluster messages which are queued.",
            "gauge",
            vec![(String::new(), queued as u64)],
        );
        family(
            "alertmanager_cluster_messages_pruned_total",
            "Total number of cluster messages pruned.",
            "counter",
            vec![(String::new(), 0)],
        );
        for (name, help, counter) in [
            (
                "alertmanager_cluster_peers_joined_total",
                "A counter of the number of peers that have joined.",
                &m.joined,
            ),
            (
                "alertmanager_cluster_peers_left_total",
                "A counter of the number of peers that have left.",
                &m.left,
            ),
            (
                "alertmanager_cluster_reconnections_total",
                "A counter of the number of cluster peer reconnections.",
                &m.reconnections,
            ),
            (
                "alertmanager_cluster_reconnections_failed_total",
                "A counter of the number of failed cluster peer reconnection attempts.",
                &m.reconnections_failed,
            ),
        ] {
            family(
                name,
                help,
                "counter",
                vec![(String::new(), counter.load(Ordering::Relaxed))],
            );
        }
    }
}

/// Binds the listen address. A cluster stopped just before (a reload
/// that dropped and brought back the `alertmanager:` section) releases
/// its listener when the runtime drops its aborted task, so an address
/// in use is tried again for up to a second.
fn bind(address: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let mut tries = 0;
    loop {
        match std::net::TcpListener::bind(address) {
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && tries < 10 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            result => return result,
        }
    }
}

/// An advertised address whose host is unspecified (`0.0.0.0`, `::`)
/// gets the host the connection came from.
fn substitute_host(advertised: &str, source: SocketAddr) -> String {
    match advertised.parse::<SocketAddr>() {
        Ok(address) if address.ip().is_unspecified() => {
            SocketAddr::new(source.ip(), address.port()).to_string()
        }
        _ => advertised.to_string(),
    }
}

/// Connections served at once; more wait in the listen backlog. A few
/// peers need a handful each (a ping, an update and a push-pull at most),
/// and the bound keeps a flood of connections from holding unbounded
/// payload memory.
const MAX_CONNECTIONS: usize = 64;

async fn accept_loop(cluster: Weak<Cluster>, listener: TcpListener) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, source)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        tokio::spawn(async move {
            cluster.serve(stream, source).await;
            drop(permit);
        });
    }
}

/// Every probe interval: pings the addresses that are due, starts a
/// full-state exchange with peers seen for the first time, and forgets
/// failed peers past the reconnect timeout.
async fn probe_loop(cluster: Weak<Cluster>) {
    let Some(interval) = cluster.upgrade().map(|c| c.options.probe_interval) else {
        return;
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        // Joined and left, by name, since the last tick.
        let live: std::collections::BTreeSet<String> = cluster.live_peers().into_keys().collect();
        {
            let mut previous = lock(&cluster.live_names);
            for name in previous.difference(&live) {
                cluster.metrics.left.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%name, "cluster peer failed");
            }
            for name in live.difference(&previous) {
                cluster.metrics.joined.fetch_add(1, Ordering::Relaxed);
                tracing::info!(%name, "cluster peer joined");
            }
            *previous = live;
        }
        let now = Instant::now();
        let window = cluster.live_window();
        let mut due = Vec::new();
        {
            let mut known = lock(&cluster.known);
            let reconnect_timeout = cluster.options.reconnect_timeout;
            known.retain(|_, k| {
                k.seed || now.duration_since(k.last_ok.unwrap_or(k.since)) <= reconnect_timeout
            });
            for (address, k) in known.iter_mut() {
                let live = k
                    .last_ok
                    .is_some_and(|last| now.duration_since(last) <= window);
                // Failed peers are tried every reconnect interval; live and
                // never-reached ones every probe.
                let failed = k.last_ok.is_some() && !live;
                let due_now = !failed
                    || k.last_probe.is_none_or(|last| {
                        now.duration_since(last) >= cluster.options.reconnect_interval
                    });
                if due_now {
                    k.last_probe = Some(now);
                    due.push((address.clone(), failed));
                }
            }
        }
        for (address, failed) in due {
            let cluster = cluster.clone();
            tokio::spawn(async move {
                let before = cluster.live_peers();
                let ping = Message {
                    kind: MessageType::Ping,
                    payload: cluster.payload(true),
                };
                let reply = cluster
                    .exchange(&address, &ping, cluster.options.probe_timeout)
                    .await;
                if failed {
                    cluster
                        .metrics
                        .reconnections
                        .fetch_add(1, Ordering::Relaxed);
                    if reply.is_none() {
                        cluster
                            .metrics
                            .reconnections_failed
                            .fetch_add(1, Ordering::Relaxed);
                    }
                }
                let Some(reply) = reply else {
                    return;
                };
                let name = reply.from().name.clone();
                if !name.is_empty() && !before.contains_key(&name) && name != cluster.name {
                    // First seen (or back): bring both sides up to date.
                    cluster.push_pull(&address).await;
                }
            });
        }
    }
}

/// Sends queued local changes to every live peer, at most once per
/// gossip interval.
async fn gossip_loop(cluster: Weak<Cluster>) {
    loop {
        let Some(strong) = cluster.upgrade() else {
            return;
        };
        {
            // Holds the handle while waiting: `Cluster::stop` aborts this
            // task.
            let notified = strong.outbox_ready.notified();
            let empty = {
                let outbox = lock(&strong.outbox);
                outbox.silences.is_empty() && outbox.nflog.is_empty()
            };
            if empty {
                notified.await;
            }
        }
        let interval = strong.options.gossip_interval;
        let outbox = std::mem::take(&mut *lock(&strong.outbox));
        let mut payload = strong.payload(false);
        payload.silences = outbox
            .silences
            .values()
            .map(SilenceRecord::from_silence)
            .collect();
        payload.nflog = outbox
            .nflog
            .iter()
            .map(|(key, entry)| EntryRecord::from_entry(key, entry))
            .collect();
        let update = Arc::new(Message {
            kind: MessageType::Update,
            payload,
        });
        let mut sends = Vec::new();
        for address in strong.live_peers().into_values() {
            let strong = strong.clone();
            let update = update.clone();
            sends.push(tokio::spawn(async move {
                strong
                    .exchange(&address, &update, strong.options.tcp_timeout)
                    .await;
            }));
        }
        drop(strong);
        for send in sends {
            let _ = send.await;
        }
        tokio::time::sleep(interval).await;
    }
}

/// Every push-pull interval: a full-state exchange with every live peer.
async fn pushpull_loop(cluster: Weak<Cluster>) {
    let Some(interval) = cluster.upgrade().map(|c| c.options.pushpull_interval) else {
        return;
    };
    loop {
        tokio::time::sleep(interval).await;
        let Some(strong) = cluster.upgrade() else {
            return;
        };
        let mut exchanges = Vec::new();
        for address in strong.live_peers().into_values() {
            let strong = strong.clone();
            exchanges.push(tokio::spawn(async move {
                strong.push_pull(&address).await;
            }));
        }
        drop(strong);
        for exchange in exchanges {
            let _ = exchange.await;
        }
    }
}

/// Alertmanager's `Peer.Settle`: ready once the member count held still
/// for three checks ten gossip intervals apart, or at the settle timeout.
async fn settle(cluster: Weak<Cluster>) {
    const N_OKAY_REQUIRED: usize = 3;
    let Some((interval, timeout)) = cluster
        .upgrade()
        .map(|c| (c.options.gossip_interval * 10, c.options.settle_timeout))
    else {
        return;
    };
    let started = Instant::now();
    let mut n_peers = 0;
    let mut n_okay = 0;
    loop {
        tokio::time::sleep(interval).await;
        let Some(strong) = cluster.upgrade() else {
            return;
        };
        if n_okay >= N_OKAY_REQUIRED {
            tracing::info!(elapsed = ?started.elapsed(), "cluster settled");
            break;
        }
        if started.elapsed() >= timeout {
            tracing::info!(elapsed = ?started.elapsed(), "cluster not settled but continuing anyway");
            break;
        }
        let n = strong.live_peers().len() + 1;
        if n == n_peers {
            n_okay += 1;
        } else {
            n_okay = 0;
        }
        n_peers = n;
    }
    if let Some(strong) = cluster.upgrade() {
        strong.ready.store(true, Ordering::SeqCst);
        strong.ready_notify.notify_waiters();
    }
}

/// A ULID (48 bits of milliseconds, 80 random bits, Crockford base32),
/// as Alertmanager names its peers.
fn new_peer_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let millis = crate::manager::now_ms().max(0) as u128 & ((1 << 48) - 1);
    let state = std::hash::RandomState::new();
    let mut hasher = state.build_hasher();
    hasher.write_u128(millis);
    let high = hasher.finish();
    hasher.write_u64(high);
    let low = hasher.finish();
    let random = ((u128::from(high) << 64) | u128::from(low)) & ((1 << 80) - 1);
    let value = (millis << 80) | random;
    (0..26)
        .rev()
        .map(|index| ALPHABET[((value >> (index * 5)) & 31) as usize] as char)
        .collect()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_frames_are_refused() {
        let message = Message {
            kind: MessageType::Update,
            payload: Payload {
                label: "l".into(),
                from: Member {
                    name: "a".into(),
                    address: "127.0.0.1:1".into(),
                },
                ..Payload::default()
            },
        };
        let frame = message.encode();
        let decoded = decode_frame(&frame).unwrap();
        assert_eq!(decoded.kind(), MessageType::Update);
        assert_eq!(decoded.label(), "l");
        assert_eq!(decoded.from().name, "a");

        let mut trailing = frame.clone();
        trailing.push(b' ');
        assert!(decode_frame(&trailing).is_err());
        assert!(decode_frame(&frame[..frame.len() - 1]).is_err());
        let mut bad_type = frame.clone();
        bad_type[5] = 9;
        assert!(decode_frame(&bad_type).is_err());
        let mut huge = frame.clone();
        huge[6..10].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_frame(&huge).is_err());
        assert!(decode_frame(b"OSPC").is_err());
        // Absent fields are empty; unknown ones are ignored.
        let mut minimal = b"OSPC\x01\x01".to_vec();
        let body = br#"{"extra":1}"#;
        minimal.extend_from_slice(&(body.len() as u32).to_be_bytes());
        minimal.extend_from_slice(body);
        let decoded = decode_frame(&minimal).unwrap();
        assert_eq!(decoded.kind(), MessageType::Ping);
        assert!(decoded.members().is_empty());
    }

    #[test]
    fn peer_names_are_ulids() {
        let a = new_peer_name();
        let b = new_peer_name();
        assert_eq!(a.len(), 26);
        assert_ne!(a, b);
    }

    #[test]
    fn unspecified_hosts_take_the_source() {
        let source: SocketAddr = "10.1.2.3:5555".parse().unwrap();
        assert_eq!(substitute_host("0.0.0.0:9094", source), "10.1.2.3:9094");
        assert_eq!(substitute_host("10.0.0.1:9094", source), "10.0.0.1:9094");
        assert_eq!(substitute_host("am-0:9094", source), "am-0:9094");
    }
}
