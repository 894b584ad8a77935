//! The built-in exporters' settings: the osprey config's `exporters:`
//! section (`blackbox`, `gpu`, `containers`, `redis`, `postgres`) and
//! blackbox_exporter's module format (a `blackbox.yml`, or
//! `exporters: {blackbox: {modules: ...}}`).
//!
//! The Redis and PostgreSQL instances are typed targets: each has its
//! address (or data source name), credentials and TLS settings here, and
//! [`ExportersConfig::scrape_jobs`] turns them into the `redis` and
//! `postgres` scrape jobs the server adds to the file's own, so the
//! instances are scraped without writing a job for them.
//!
//! A [`Module`] is one entry of blackbox_exporter's `modules:` map as plain
//! values, regexes compiled and CA files read, so a module that loaded is
//! one the prober can run. The `http` prober's client settings are
//! blackbox_exporter's inline `http_client_config`: Prometheus's
//! [`HttpClientConfig`] (authentication, proxies, redirects, HTTP/2,
//! `tls_config`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use regex::Regex;
use yaml::Node;

use crate::ConfigError;
use crate::decode::{Decoder, Field};
use crate::http::{self, HttpClientConfig, TlsConfig, TlsVersion};
use crate::prometheus::{GlobalConfig, ScrapeConfig, StaticConfig};

/// The `exporters:` section.
#[derive(Clone, Debug, Default)]
pub struct ExportersConfig {
    /// `blackbox.modules`; `None` when the section names none, which means
    /// the default modules ([`default_modules`]).
    pub blackbox_modules: Option<Modules>,
    pub gpu: GpuNamesConfig,
    pub containers: ContainersConfig,
    pub redis: RedisConfig,
    pub postgres: PostgresConfig,
}

impl ExportersConfig {
    /// The blackbox modules in effect.
    pub fn modules(&self) -> Modules {
        self.blackbox_modules
            .clone()
            .unwrap_or_else(default_modules)
    }

    /// The scrape jobs for the configured Redis and PostgreSQL instances
    /// (`redis` and `postgres`), scraping the server itself at
    /// `self_address` (`host:port`) with `?target=` naming each instance:
    /// the Redis address, or the PostgreSQL instance's name. Empty when no
    /// instance is configured or `scrape: false`.
    pub fn scrape_jobs(&self, self_address: &str, global: &GlobalConfig) -> Vec<ScrapeConfig> {
        let mut jobs = Vec::new();
        let job = |name: &str, path: &str, targets: Vec<String>| {
            let mut job = ScrapeConfig::new(name, global);
            job.metrics_path = path.to_string();
            job.static_configs = targets
                .into_iter()
                .map(|target| StaticConfig {
                    targets: vec![self_address.to_string()],
                    labels: vec![
                        ("__param_target".to_string(), target.clone()),
                        ("instance".to_string(), target),
                    ],
                })
                .collect();
            job
        };
        if self.redis.scrape && !self.redis.instances.is_empty() {
            jobs.push(job(
                REDIS_JOB,
                "/exporters/redis/scrape",
                self.redis
                    .instances
                    .iter()
                    .map(|i| i.address.clone())
                    .collect(),
            ));
        }
        if self.postgres.scrape && !self.postgres.instances.is_empty() {
            jobs.push(job(
                POSTGRES_JOB,
                "/exporters/postgres/metrics",
                self.postgres
                    .instances
                    .iter()
                    .map(|i| i.name.clone())
                    .collect(),
            ));
        }
        jobs
    }
}

/// The job names of [`ExportersConfig::scrape_jobs`].
pub const REDIS_JOB: &str = "redis";
pub const POSTGRES_JOB: &str = "postgres";

/// `exporters.gpu`: which GPU metric names are served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuNamesConfig {
    /// DCGM exporter's `DCGM_FI_DEV_*` (`dcgm_names`, default true).
    pub dcgm_names: bool,
    /// nvidia_gpu_prometheus_exporter's `nvidia_gpu_*`
    /// (`nvidia_gpu_exporter_names`, default true).
    pub nvidia_gpu_exporter_names: bool,
}

impl Default for GpuNamesConfig {
    fn default() -> GpuNamesConfig {
        GpuNamesConfig {
            dcgm_names: true,
            nvidia_gpu_exporter_names: true,
        }
    }
}

/// `exporters.containers`: where the container exporter reads from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainersConfig {
    pub cgroup_root: PathBuf,
    pub docker_root: PathBuf,
    pub containerd_state: PathBuf,
    /// Only runtime containers and the root (cAdvisor's `docker_only`).
    pub docker_only: bool,
    /// `container_label_*` labels (cAdvisor's `store_container_labels`).
    pub store_container_labels: bool,
}

impl Default for ContainersConfig {
    fn default() -> ContainersConfig {
        ContainersConfig {
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            docker_root: PathBuf::from("/var/lib/docker"),
            containerd_state: PathBuf::from("/run/containerd"),
            docker_only: false,
            store_container_labels: true,
        }
    }
}

/// A secret given inline or in a file; a file is read on every use (see
/// [`crate::secret`]), so a rotated secret applies without a reload.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Inline(String),
    /// The file's path, relative ones already joined to the config's
    /// directory.
    File(String),
}

impl Secret {
    /// The secret now.
    pub fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(text) => Ok(text.clone()),
            Secret::File(path) => crate::secret::read_secret(path),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Inline(_) => f.write_str("Secret::Inline(<secret>)"),
            Secret::File(path) => write!(f, "Secret::File({path:?})"),
        }
    }
}

/// `exporters.redis`.
#[derive(Clone, Debug, Default)]
pub struct RedisConfig {
    /// Whether the server scrapes the instances as job `redis` (default
    /// true).
    pub scrape: bool,
    pub instances: Vec<RedisInstance>,
}

/// One Redis instance.
#[derive(Clone, Debug)]
pub struct RedisInstance {
    /// `redis://host:port[/db]` or `rediss://...`; `host:port` is written
    /// with `redis://` in front. Never holds a password.
    pub address: String,
    /// An ACL user (Redis 6 and later).
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// `tls_config`, files read; only for `rediss://`.
    pub tls: Option<TlsOptions>,
}

/// `exporters.postgres`.
#[derive(Clone, Debug, Default)]
pub struct PostgresConfig {
    /// Whether the server scrapes the instances as job `postgres`
    /// (default true).
    pub scrape: bool,
    pub instances: Vec<PostgresInstance>,
}

/// One PostgreSQL server.
#[derive(Clone, Debug)]
pub struct PostgresInstance {
    /// How the instance is named in `?target=` and the `instance` label.
    pub name: String,
    /// The data source name, as postgres_exporter's `DATA_SOURCE_NAME`
    /// (a URL or `key=value` pairs).
    pub data_source_name: Secret,
}

/// Blackbox modules by name.
pub type Modules = BTreeMap<String, Module>;

/// One module: which prober, with which settings, and its own time limit.
#[derive(Clone, Debug)]
pub struct Module {
    /// The module's time limit, if it sets one; the probe also stops at
    /// the limit its caller passes.
    pub timeout: Option<Duration>,
    pub prober: Prober,
}

/// The prober of a module and its settings.
#[derive(Clone, Debug)]
pub enum Prober {
    Http(Box<HttpProbe>),
    Tcp(TcpProbe),
    Dns(DnsProbe),
}

/// Which address family to try first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpProtocol {
    Ip4,
    Ip6,
}

/// How a target's host name is resolved (blackbox_exporter's
/// `preferred_ip_protocol` and `ip_protocol_fallback`).
#[derive(Clone, Copy, Debug)]
pub struct IpOptions {
    pub preferred: IpProtocol,
    /// Use the other family when the preferred one has no address.
    pub fallback: bool,
}

impl IpOptions {
    /// blackbox_exporter's defaults: IPv6 first, falling back to IPv4.
    pub fn blackbox_defaults() -> IpOptions {
        IpOptions {
            preferred: IpProtocol::Ip6,
            fallback: true,
        }
    }
}

/// TLS settings of a probe, files read.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Accept any certificate (the chain is still recorded).
    pub insecure_skip_verify: bool,
    /// PEM certificates to trust instead of the system's roots.
    pub ca_pem: Option<Vec<u8>>,
    /// The name to verify the certificate against instead of the target's
    /// host (also sent as SNI by the TCP prober).
    pub server_name: Option<String>,
    /// A client certificate followed by its key, as PEM.
    pub identity_pem: Option<Vec<u8>>,
    pub min_version: Option<TlsVersion>,
    pub max_version: Option<TlsVersion>,
}

impl TlsOptions {
    /// Reads the files a `tls_config` names.
    pub fn from_config(tls: &TlsConfig) -> Result<TlsOptions, String> {
        Ok(TlsOptions {
            insecure_skip_verify: tls.insecure_skip_verify,
            ca_pem: crate::client::ca_pem(tls)?,
            server_name: tls.server_name.clone(),
            identity_pem: crate::client::identity_pem(tls)?,
            min_version: tls.min_version,
            max_version: tls.max_version,
        })
    }
}

/// A header check: fail when `regexp` matches (or does not match) a
/// header's value.
#[derive(Clone, Debug)]
pub struct HeaderMatch {
    pub header: String,
    pub regexp: Regex,
    /// Whether a missing header passes the check.
    pub allow_missing: bool,
}

/// The `http` prober's settings.
#[derive(Clone, Debug)]
pub struct HttpProbe {
    /// Accepted status codes; empty means 2xx.
    pub valid_status_codes: Vec<u16>,
    /// Accepted versions (`HTTP/1.1`, `HTTP/2.0`); empty means any.
    pub valid_http_versions: Vec<String>,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    pub fail_if_ssl: bool,
    pub fail_if_not_ssl: bool,
    pub fail_if_body_matches_regexp: Vec<Regex>,
    pub fail_if_body_not_matches_regexp: Vec<Regex>,
    pub fail_if_header_matches: Vec<HeaderMatch>,
    pub fail_if_header_not_matches: Vec<HeaderMatch>,
    /// The client settings (`follow_redirects` among them); its
    /// `tls_config` is also in [`HttpProbe::tls`] with the files read.
    pub http: HttpClientConfig,
    pub tls: TlsOptions,
    pub ip: IpOptions,
    /// Largest body read; a larger body fails the probe. `None`: no limit.
    pub body_size_limit: Option<u64>,
}

impl HttpProbe {
    /// blackbox_exporter's defaults: `GET`, 2xx, redirects followed.
    pub fn blackbox_defaults() -> HttpProbe {
        HttpProbe {
            valid_status_codes: Vec::new(),
            valid_http_versions: Vec::new(),
            method: "GET".to_string(),
            headers: Vec::new(),
            body: None,
            fail_if_ssl: false,
            fail_if_not_ssl: false,
            fail_if_body_matches_regexp: Vec::new(),
            fail_if_body_not_matches_regexp: Vec::new(),
            fail_if_header_matches: Vec::new(),
            fail_if_header_not_matches: Vec::new(),
            http: HttpClientConfig::default(),
            tls: TlsOptions::default(),
            ip: IpOptions::blackbox_defaults(),
            body_size_limit: None,
        }
    }

    /// Whether redirects are followed.
    pub fn follow_redirects(&self) -> bool {
        self.http.follow_redirects
    }
}

/// One step of a TCP conversation.
#[derive(Clone, Debug)]
pub struct QueryResponse {
    /// Read lines until one matches; the probe fails at end of input.
    pub expect: Option<Regex>,
    /// Then send this text followed by a newline.
    pub send: Option<String>,
    /// Then switch the connection to TLS.
    pub starttls: bool,
}

/// The `tcp` prober's settings.
#[derive(Clone, Debug)]
pub struct TcpProbe {
    /// Start TLS right after connecting.
    pub tls: bool,
    pub tls_config: TlsOptions,
    pub query_response: Vec<QueryResponse>,
    pub ip: IpOptions,
}

/// DNS over UDP or TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsTransport {
    Udp,
    Tcp,
}

/// The `dns` prober's settings.
#[derive(Clone, Debug)]
pub struct DnsProbe {
    pub query_name: String,
    /// The numeric RR type (1 for `A`, 28 for `AAAA`, ...).
    pub query_type: u16,
    pub transport: DnsTransport,
    /// Accepted response codes (numeric); empty means `NOERROR` only.
    pub valid_rcodes: Vec<u8>,
    pub recursion_desired: bool,
    pub ip: IpOptions,
}

/// The numeric RR type for a name blackbox_exporter accepts (`A`, `AAAA`,
/// `MX`, ...), or `None` for names the prober does not know.
pub fn dns_type_from_name(name: &str) -> Option<u16> {
    Some(match name.to_ascii_uppercase().as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "CAA" => 257,
        "ANY" => 255,
        _ => return None,
    })
}

/// The numeric response code for its name (`NOERROR`, `NXDOMAIN`, ...).
pub fn rcode_from_name(name: &str) -> Option<u8> {
    Some(match name.to_ascii_uppercase().as_str() {
        "NOERROR" => 0,
        "FORMERR" => 1,
        "SERVFAIL" => 2,
        "NXDOMAIN" => 3,
        "NOTIMP" => 4,
        "REFUSED" => 5,
        "YXDOMAIN" => 6,
        "YXRRSET" => 7,
        "NXRRSET" => 8,
        "NOTAUTH" => 9,
        "NOTZONE" => 10,
        _ => return None,
    })
}

/// blackbox_exporter's two basic example modules.
pub fn default_modules() -> Modules {
    let mut modules = Modules::new();
    modules.insert(
        "http_2xx".to_string(),
        Module {
            timeout: None,
            prober: Prober::Http(Box::new(HttpProbe::blackbox_defaults())),
        },
    );
    modules.insert(
        "tcp_connect".to_string(),
        Module {
            timeout: None,
            prober: Prober::Tcp(TcpProbe {
                tls: false,
                tls_config: TlsOptions::default(),
                query_response: Vec::new(),
                ip: IpOptions::blackbox_defaults(),
            }),
        },
    );
    modules
}

/// Reads a blackbox.yml (blackbox_exporter's format); relative paths are
/// relative to its directory.
pub fn load_blackbox_file(path: &Path) -> Result<Modules, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|error| ConfigError::file(&name, format!("reading the file: {error}")))?;
    parse_blackbox(&name, &text, path.parent())
}

/// Parses a blackbox.yml's text.
pub fn parse_blackbox(
    name: &str,
    text: &str,
    base_dir: Option<&Path>,
) -> Result<Modules, ConfigError> {
    let root = crate::decode::parse_yaml(name, text)?;
    let decoder = Decoder::new(name, base_dir);
    let mut modules = None;
    for field in decoder.fields(&root, "")? {
        match field.name.as_str() {
            "modules" => modules = Some(decode_modules(&decoder, field.value, &field.path)?),
            _ => return Err(decoder.unknown(&field)),
        }
    }
    Ok(modules.unwrap_or_default())
}

/// The `exporters:` section of an osprey config.
pub fn decode_exporters(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<ExportersConfig, ConfigError> {
    let mut config = ExportersConfig::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "blackbox" => {
                let mut modules = Modules::new();
                for g in decoder.fields(f.value, &f.path)? {
                    match g.name.as_str() {
                        "modules" => modules = decode_modules(decoder, g.value, &g.path)?,
                        _ => return Err(decoder.unknown(&g)),
                    }
                }
                config.blackbox_modules = Some(modules);
            }
            "gpu" => config.gpu = decode_gpu(decoder, f.value, &f.path)?,
            "containers" => config.containers = decode_containers(decoder, f.value, &f.path)?,
            "redis" => config.redis = decode_redis(decoder, f.value, &f.path)?,
            "postgres" => config.postgres = decode_postgres(decoder, f.value, &f.path)?,
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(config)
}

fn decode_gpu(decoder: &Decoder, node: &Node, field: &str) -> Result<GpuNamesConfig, ConfigError> {
    let mut gpu = GpuNamesConfig::default();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "dcgm_names" => gpu.dcgm_names = decoder.bool(f.value, &f.path)?,
            "nvidia_gpu_exporter_names" => {
                gpu.nvidia_gpu_exporter_names = decoder.bool(f.value, &f.path)?
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(gpu)
}

fn decode_containers(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<ContainersConfig, ConfigError> {
    let mut containers = ContainersConfig::default();
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "cgroup_root" => containers.cgroup_root = PathBuf::from(decoder.path(value, path)?),
            "docker_root" => containers.docker_root = PathBuf::from(decoder.path(value, path)?),
            "containerd_state" => {
                containers.containerd_state = PathBuf::from(decoder.path(value, path)?)
            }
            "docker_only" => containers.docker_only = decoder.bool(value, path)?,
            "store_container_labels" => {
                containers.store_container_labels = decoder.bool(value, path)?
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(containers)
}

/// `password`/`password_file` or the like: at most one of the two; a file
/// must be readable now (it is read again on every use).
fn secret_pair(
    decoder: &Decoder,
    inline: Option<&Field<'_>>,
    file: Option<&Field<'_>>,
    what: &str,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(f)) => Err(decoder.error(
            f.key.line,
            &f.path,
            format!("at most one of {what} and {what}_file may be set"),
        )),
        (Some(f), None) => Ok(Some(Secret::Inline(decoder.string(f.value, &f.path)?))),
        (None, Some(f)) => {
            let path = decoder.path(f.value, &f.path)?;
            crate::secret::read_secret(&path)
                .map_err(|message| decoder.error(f.value.line, &f.path, message))?;
            Ok(Some(Secret::File(path)))
        }
        (None, None) => Ok(None),
    }
}

fn decode_redis(decoder: &Decoder, node: &Node, field: &str) -> Result<RedisConfig, ConfigError> {
    let mut redis = RedisConfig {
        scrape: true,
        instances: Vec::new(),
    };
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "scrape" => redis.scrape = decoder.bool(f.value, &f.path)?,
            "instances" => {
                for (index, item) in decoder.sequence(f.value, &f.path)?.iter().enumerate() {
                    let path = format!("{}[{index}]", f.path);
                    let instance = decode_redis_instance(decoder, item, &path)?;
                    if redis
                        .instances
                        .iter()
                        .any(|i| i.address == instance.address)
                    {
                        return Err(decoder.error(
                            item.line,
                            &path,
                            format!("instance {:?} is listed twice", instance.address),
                        ));
                    }
                    redis.instances.push(instance);
                }
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(redis)
}

fn decode_redis_instance(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<RedisInstance, ConfigError> {
    let fields = decoder.fields(node, field)?;
    let mut address = None;
    let mut user = None;
    let mut tls = None;
    let mut password = None;
    let mut password_file = None;
    for f in &fields {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "address" => {
                let text = decoder.string(value, path)?;
                let text = if text.contains("://") {
                    text
                } else {
                    format!("redis://{text}")
                };
                let Some((scheme, rest)) = text.split_once("://") else {
                    return Err(decoder.error(value.line, path, "empty address"));
                };
                if scheme != "redis" && scheme != "rediss" {
                    return Err(decoder.error(
                        value.line,
                        path,
                        format!("scheme {scheme:?}: want redis:// or rediss://"),
                    ));
                }
                let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
                if authority.is_empty() {
                    return Err(decoder.error(value.line, path, "the address has no host"));
                }
                if authority.contains('@') {
                    return Err(decoder.error(
                        value.line,
                        path,
                        "credentials go in user and password or password_file, not the address",
                    ));
                }
                address = Some(text);
            }
            "user" => user = Some(decoder.string(value, path)?),
            "password" => password = Some(f),
            "password_file" => password_file = Some(f),
            "tls_config" => {
                let config = http::tls_config(decoder, value, path)?;
                if config.server_name.is_some()
                    || config.min_version.is_some()
                    || config.max_version.is_some()
                {
                    return Err(decoder.unsupported(
                        f,
                        "server_name, min_version and max_version for Redis (the Redis client checks the address's host with TLS 1.2 and 1.3)",
                    ));
                }
                tls = Some(
                    TlsOptions::from_config(&config)
                        .map_err(|message| decoder.error(value.line, path, message))?,
                );
            }
            _ => return Err(decoder.unknown(f)),
        }
    }
    let Some(address) = address else {
        return Err(decoder.error(node.line, field, "missing address"));
    };
    if tls.is_some() && !address.starts_with("rediss://") {
        return Err(decoder.error(node.line, field, "tls_config needs a rediss:// address"));
    }
    Ok(RedisInstance {
        address,
        user,
        password: secret_pair(decoder, password, password_file, "password")?,
        tls,
    })
}

fn decode_postgres(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<PostgresConfig, ConfigError> {
    let mut postgres = PostgresConfig {
        scrape: true,
        instances: Vec::new(),
    };
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "scrape" => postgres.scrape = decoder.bool(f.value, &f.path)?,
            "instances" => {
                for (index, item) in decoder.sequence(f.value, &f.path)?.iter().enumerate() {
                    let path = format!("{}[{index}]", f.path);
                    let mut name = None;
                    let mut dsn = None;
                    let mut dsn_file = None;
                    let fields = decoder.fields(item, &path)?;
                    for g in &fields {
                        match g.name.as_str() {
                            "name" => name = Some(decoder.string(g.value, &g.path)?),
                            "data_source_name" => dsn = Some(g),
                            "data_source_name_file" => dsn_file = Some(g),
                            _ => return Err(decoder.unknown(g)),
                        }
                    }
                    let Some(name) = name.filter(|n| !n.is_empty()) else {
                        return Err(decoder.error(item.line, &path, "missing name"));
                    };
                    if postgres.instances.iter().any(|i| i.name == name) {
                        return Err(decoder.error(
                            item.line,
                            &path,
                            format!("instance name {name:?} is used twice"),
                        ));
                    }
                    let Some(data_source_name) =
                        secret_pair(decoder, dsn, dsn_file, "data_source_name")?
                    else {
                        return Err(decoder.error(
                            item.line,
                            &path,
                            "missing data_source_name or data_source_name_file",
                        ));
                    };
                    postgres.instances.push(PostgresInstance {
                        name,
                        data_source_name,
                    });
                }
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    Ok(postgres)
}

fn decode_modules(decoder: &Decoder, node: &Node, field: &str) -> Result<Modules, ConfigError> {
    let mut modules = Modules::new();
    for f in decoder.fields(node, field)? {
        let module = decode_module(decoder, f.value, &f.path)?;
        modules.insert(f.name, module);
    }
    Ok(modules)
}

fn decode_module(decoder: &Decoder, node: &Node, field: &str) -> Result<Module, ConfigError> {
    let mut prober_name = None;
    let mut timeout = None;
    let mut sections: BTreeMap<String, Field<'_>> = BTreeMap::new();
    for f in decoder.fields(node, field)? {
        match f.name.as_str() {
            "prober" => prober_name = Some((decoder.string(f.value, &f.path)?, f.value.line)),
            "timeout" => {
                let ms = decoder.duration(f.value, &f.path)?;
                timeout = Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)));
            }
            "http" | "tcp" | "dns" => {
                sections.insert(f.name.clone(), f);
            }
            "icmp" | "grpc" | "unix" => {
                return Err(decoder.unsupported(&f, "this prober (osprey has http, tcp and dns)"));
            }
            _ => return Err(decoder.unknown(&f)),
        }
    }
    let Some((prober_name, line)) = prober_name else {
        return Err(decoder.error(node.line, field, "missing prober"));
    };
    let section = |name: &str| sections.get(name).map(|f| (f.value, f.path.clone()));
    let default_path = |name: &str| format!("{field}.{name}");
    let prober = match prober_name.as_str() {
        "http" => {
            let (node, path) = section("http").unwrap_or((&EMPTY, default_path("http")));
            Prober::Http(Box::new(http_probe(decoder, node, &path)?))
        }
        "tcp" => {
            let (node, path) = section("tcp").unwrap_or((&EMPTY, default_path("tcp")));
            Prober::Tcp(tcp_probe(decoder, node, &path)?)
        }
        "dns" => {
            let Some((node, path)) = section("dns") else {
                return Err(decoder.error(
                    node.line,
                    field,
                    "the dns prober needs a dns section with query_name",
                ));
            };
            Prober::Dns(dns_probe(decoder, node, &path)?)
        }
        other => {
            return Err(decoder.error(
                line,
                &format!("{field}.prober"),
                format!("prober {other:?} is not supported (osprey has http, tcp and dns)"),
            ));
        }
    };
    Ok(Module { timeout, prober })
}

/// An empty mapping, for a prober section that is absent.
static EMPTY: Node = Node {
    line: 0,
    value: yaml::NodeValue::Null,
};

fn regex(decoder: &Decoder, node: &Node, field: &str) -> Result<Regex, ConfigError> {
    let pattern = decoder.string(node, field)?;
    Regex::new(&pattern).map_err(|error| {
        decoder.error(node.line, field, format!("bad regexp {pattern:?}: {error}"))
    })
}

fn regex_list(decoder: &Decoder, node: &Node, field: &str) -> Result<Vec<Regex>, ConfigError> {
    decoder
        .sequence(node, field)?
        .iter()
        .enumerate()
        .map(|(index, item)| regex(decoder, item, &format!("{field}[{index}]")))
        .collect()
}

fn header_matches(
    decoder: &Decoder,
    node: &Node,
    field: &str,
) -> Result<Vec<HeaderMatch>, ConfigError> {
    let mut matches = Vec::new();
    for (index, item) in decoder.sequence(node, field)?.iter().enumerate() {
        let path = format!("{field}[{index}]");
        let mut header = None;
        let mut regexp = None;
        let mut allow_missing = false;
        for f in decoder.fields(item, &path)? {
            match f.name.as_str() {
                "header" => header = Some(decoder.string(f.value, &f.path)?),
                "regexp" => regexp = Some(regex(decoder, f.value, &f.path)?),
                "allow_missing" => allow_missing = decoder.bool(f.value, &f.path)?,
                _ => return Err(decoder.unknown(&f)),
            }
        }
        let (Some(header), Some(regexp)) = (header, regexp) else {
            return Err(decoder.error(item.line, &path, "header and regexp must both be set"));
        };
        matches.push(HeaderMatch {
            header,
            regexp,
            allow_missing,
        });
    }
    Ok(matches)
}

fn ip_field(decoder: &Decoder, ip: &mut IpOptions, f: &Field<'_>) -> Result<bool, ConfigError> {
    match f.name.as_str() {
        "preferred_ip_protocol" => match decoder.string(f.value, &f.path)?.as_str() {
            "" | "ip6" => ip.preferred = IpProtocol::Ip6,
            "ip4" => ip.preferred = IpProtocol::Ip4,
            other => {
                return Err(decoder.error(
                    f.value.line,
                    &f.path,
                    format!("preferred_ip_protocol {other:?}: want ip4 or ip6"),
                ));
            }
        },
        "ip_protocol_fallback" => ip.fallback = decoder.bool(f.value, &f.path)?,
        "source_ip_address" => {
            return Err(decoder.unsupported(f, "choosing the source address"));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn tls_options(decoder: &Decoder, node: &Node, field: &str) -> Result<TlsOptions, ConfigError> {
    let tls = http::tls_config(decoder, node, field)?;
    TlsOptions::from_config(&tls).map_err(|message| decoder.error(node.line, field, message))
}

fn http_probe(decoder: &Decoder, node: &Node, field: &str) -> Result<HttpProbe, ConfigError> {
    let mut p = HttpProbe::blackbox_defaults();
    let mut no_follow = None;
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "valid_status_codes" => {
                for (index, item) in decoder.sequence(value, path)?.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    let code = decoder.unsigned(item, &item_path)?;
                    let code = u16::try_from(code)
                        .ok()
                        .filter(|c| (100..600).contains(c))
                        .ok_or_else(|| {
                            decoder.error(
                                item.line,
                                &item_path,
                                format!("invalid status code {code}"),
                            )
                        })?;
                    p.valid_status_codes.push(code);
                }
            }
            "valid_http_versions" => p.valid_http_versions = decoder.string_list(value, path)?,
            "method" => p.method = decoder.string(value, path)?.to_ascii_uppercase(),
            "headers" => p.headers = decoder.string_map(value, path)?.into_iter().collect(),
            "body" => p.body = Some(decoder.string(value, path)?),
            "no_follow_redirects" => no_follow = Some(decoder.bool(value, path)?),
            "fail_if_ssl" => p.fail_if_ssl = decoder.bool(value, path)?,
            "fail_if_not_ssl" => p.fail_if_not_ssl = decoder.bool(value, path)?,
            "fail_if_body_matches_regexp" => {
                p.fail_if_body_matches_regexp = regex_list(decoder, value, path)?
            }
            "fail_if_body_not_matches_regexp" => {
                p.fail_if_body_not_matches_regexp = regex_list(decoder, value, path)?
            }
            "fail_if_header_matches" => {
                p.fail_if_header_matches = header_matches(decoder, value, path)?
            }
            "fail_if_header_not_matches" => {
                p.fail_if_header_not_matches = header_matches(decoder, value, path)?
            }
            "body_size_limit" => {
                p.body_size_limit = Some(decoder.byte_size(value, path)?).filter(|&l| l > 0)
            }
            "compression"
            | "body_file"
            | "skip_resolve_phase_with_proxy"
            | "http_client_config" => {
                return Err(decoder.unsupported(&f, "this http prober setting"));
            }
            _ => {
                if !ip_field(decoder, &mut p.ip, &f)?
                    && !http::decode_field(decoder, &mut p.http, &f)?
                {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    http::validate(decoder, &p.http, node.line, field)?;
    // The deprecated negative form, when the positive one is not set.
    if let Some(no_follow) = no_follow
        && decoder
            .fields(node, field)?
            .iter()
            .all(|f| f.name != "follow_redirects")
    {
        p.http.follow_redirects = !no_follow;
    }
    p.tls = TlsOptions::from_config(&p.http.tls_config)
        .map_err(|message| decoder.error(node.line, &format!("{field}.tls_config"), message))?;
    Ok(p)
}

fn tcp_probe(decoder: &Decoder, node: &Node, field: &str) -> Result<TcpProbe, ConfigError> {
    let mut p = TcpProbe {
        tls: false,
        tls_config: TlsOptions::default(),
        query_response: Vec::new(),
        ip: IpOptions::blackbox_defaults(),
    };
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "tls" => p.tls = decoder.bool(value, path)?,
            "tls_config" => p.tls_config = tls_options(decoder, value, path)?,
            "query_response" => {
                for (index, item) in decoder.sequence(value, path)?.iter().enumerate() {
                    let item_path = format!("{path}[{index}]");
                    let mut step = QueryResponse {
                        expect: None,
                        send: None,
                        starttls: false,
                    };
                    for g in decoder.fields(item, &item_path)? {
                        match g.name.as_str() {
                            "expect" => step.expect = Some(regex(decoder, g.value, &g.path)?),
                            "send" => step.send = Some(decoder.string(g.value, &g.path)?),
                            "starttls" => step.starttls = decoder.bool(g.value, &g.path)?,
                            "expect_bytes" => {
                                return Err(decoder.unsupported(&g, "matching raw bytes"));
                            }
                            _ => return Err(decoder.unknown(&g)),
                        }
                    }
                    p.query_response.push(step);
                }
            }
            _ => {
                if !ip_field(decoder, &mut p.ip, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    Ok(p)
}

fn dns_probe(decoder: &Decoder, node: &Node, field: &str) -> Result<DnsProbe, ConfigError> {
    let mut query_name = None;
    let mut query_type = 255;
    let mut transport = DnsTransport::Udp;
    let mut valid_rcodes = Vec::new();
    let mut recursion_desired = true;
    let mut ip = IpOptions::blackbox_defaults();
    for f in decoder.fields(node, field)? {
        let (value, path) = (f.value, f.path.as_str());
        match f.name.as_str() {
            "query_name" => query_name = Some(decoder.string(value, path)?),
            "query_type" => {
                let name = decoder.string(value, path)?;
                query_type = dns_type_from_name(&name).ok_or_else(|| {
                    decoder.error(
                        value.line,
                        path,
                        format!("query_type {name:?} is not supported"),
                    )
                })?;
            }
            "transport_protocol" => {
                transport = match decoder.string(value, path)?.as_str() {
                    "" | "udp" => DnsTransport::Udp,
                    "tcp" => DnsTransport::Tcp,
                    other => {
                        return Err(decoder.error(
                            value.line,
                            path,
                            format!("transport_protocol {other:?}: want udp or tcp"),
                        ));
                    }
                }
            }
            "valid_rcodes" => {
                for (name, line) in decoder.string_list_with_lines(value, path)? {
                    let code = rcode_from_name(&name).ok_or_else(|| {
                        decoder.error(line, path, format!("unknown rcode {name:?}"))
                    })?;
                    valid_rcodes.push(code);
                }
            }
            "recursion_desired" => recursion_desired = decoder.bool(value, path)?,
            "query_class" => {
                if !decoder.string(value, path)?.eq_ignore_ascii_case("IN") {
                    return Err(decoder.unsupported(&f, "query classes other than IN"));
                }
            }
            "dns_over_tls"
            | "tls_config"
            | "validate_answer_rrs"
            | "validate_authority_rrs"
            | "validate_additional_rrs" => {
                return Err(decoder.unsupported(&f, "this dns prober setting"));
            }
            _ => {
                if !ip_field(decoder, &mut ip, &f)? {
                    return Err(decoder.unknown(&f));
                }
            }
        }
    }
    let Some(query_name) = query_name.filter(|name| !name.is_empty()) else {
        return Err(decoder.error(node.line, field, "query name must be set for DNS module"));
    };
    Ok(DnsProbe {
        query_name,
        query_type,
        transport,
        valid_rcodes,
        recursion_desired,
        ip,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blackbox_file_with_every_prober() {
        let text = r#"
modules:
  http_post:
    prober: http
    timeout: 5s
    http:
      method: post
      valid_status_codes: [200, 201]
      headers: {X-Key: k}
      body: ping
      no_follow_redirects: true
      fail_if_body_not_matches_regexp: ["pong"]
      fail_if_header_matches:
        - header: Server
          regexp: "nginx"
          allow_missing: true
      tls_config: {insecure_skip_verify: true, server_name: example.org}
      basic_auth: {username: probe, password: pw}
      preferred_ip_protocol: ip4
  smtp:
    prober: tcp
    tcp:
      query_response:
        - expect: "^220"
        - send: "EHLO osprey"
        - starttls: true
  dns_ok:
    prober: dns
    dns:
      query_name: example.org
      query_type: AAAA
      transport_protocol: tcp
      valid_rcodes: [NOERROR, NXDOMAIN]
"#;
        let modules = parse_blackbox("blackbox.yml", text, None).unwrap();
        assert_eq!(modules.len(), 3);
        let Module {
            timeout,
            prober: Prober::Http(h),
        } = &modules["http_post"]
        else {
            panic!("http_post");
        };
        assert_eq!(*timeout, Some(Duration::from_secs(5)));
        assert_eq!(h.method, "POST");
        assert_eq!(h.valid_status_codes, [200, 201]);
        assert!(!h.follow_redirects());
        assert!(h.tls.insecure_skip_verify);
        assert_eq!(h.tls.server_name.as_deref(), Some("example.org"));
        assert_eq!(h.http.basic_auth.as_ref().unwrap().username, "probe");
        assert_eq!(h.ip.preferred, IpProtocol::Ip4);
        let Prober::Tcp(t) = &modules["smtp"].prober else {
            panic!("smtp");
        };
        assert_eq!(t.query_response.len(), 3);
        assert!(t.query_response[2].starttls);
        let Prober::Dns(d) = &modules["dns_ok"].prober else {
            panic!("dns");
        };
        assert_eq!((d.query_type, d.valid_rcodes.clone()), (28, vec![0, 3]));
        assert_eq!(d.transport, DnsTransport::Tcp);
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let cases = [
            (
                "modules:\n  a:\n    prober: http\n    http:\n      methd: GET\n",
                "bb.yml:5: modules.a.http.methd: unknown field",
            ),
            (
                "modules:\n  a:\n    prober: icmp\n",
                "bb.yml:3: modules.a.prober: prober \"icmp\" is not supported",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      fail_if_body_matches_regexp: ['(']\n",
                "bb.yml:5: modules.a.http.fail_if_body_matches_regexp[0]: bad regexp",
            ),
            (
                "modules:\n  a:\n    prober: http\n    http:\n      tls_config: {ca_file: /nonexistent/ca.pem}\n",
                "bb.yml:5: modules.a.http.tls_config: tls_config.ca_file: reading /nonexistent/ca.pem",
            ),
            (
                "modules:\n  a:\n    prober: dns\n",
                "bb.yml:3: modules.a: the dns prober needs a dns section",
            ),
            (
                "modules:\n  a:\n    prober: http\n    icmp: {}\n",
                "bb.yml:4: modules.a.icmp: not supported by osprey",
            ),
        ];
        for (text, want) in cases {
            let error = parse_blackbox("bb.yml", text, None)
                .unwrap_err()
                .to_string();
            assert!(
                error.starts_with(want),
                "{text}\n got: {error}\nwant: {want}"
            );
        }
    }

    fn exporters(text: &str, dir: Option<&Path>) -> Result<ExportersConfig, ConfigError> {
        let root = crate::decode::parse_yaml("osprey.yml", text)?;
        let decoder = Decoder::new("osprey.yml", dir);
        let fields = decoder.fields(&root, "")?;
        decode_exporters(&decoder, fields[0].value, "exporters")
    }

    #[test]
    fn typed_redis_and_postgres_instances_gpu_and_containers() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("redis.pass"), "pw\n").unwrap();
        std::fs::write(dir.path().join("pg.dsn"), "postgresql://u:p@db/app\n").unwrap();
        let text = r#"
exporters:
  gpu: {dcgm_names: false}
  containers: {cgroup_root: cg, docker_only: true, store_container_labels: false}
  redis:
    instances:
      - address: cache-1:6379
        user: metrics
        password_file: redis.pass
      - address: rediss://cache-2:6380
        password: inline
        tls_config: {insecure_skip_verify: true}
  postgres:
    instances:
      - name: metadata
        data_source_name_file: pg.dsn
      - name: features
        data_source_name: "host=db2 user=exporter sslmode=disable"
"#;
        let config = exporters(text, Some(dir.path())).unwrap();
        assert!(!config.gpu.dcgm_names && config.gpu.nvidia_gpu_exporter_names);
        assert_eq!(config.containers.cgroup_root, dir.path().join("cg"));
        assert!(config.containers.docker_only && !config.containers.store_container_labels);
        assert_eq!(config.redis.instances[0].address, "redis://cache-1:6379");
        assert_eq!(
            config.redis.instances[0]
                .password
                .as_ref()
                .unwrap()
                .read()
                .unwrap(),
            "pw"
        );
        assert!(
            config.redis.instances[1]
                .tls
                .as_ref()
                .unwrap()
                .insecure_skip_verify
        );
        assert_eq!(
            config.postgres.instances[0]
                .data_source_name
                .read()
                .unwrap(),
            "postgresql://u:p@db/app"
        );
        // The DSN is never printed.
        assert!(!format!("{config:?}").contains("exporter sslmode"));

        let global = GlobalConfig::default();
        let jobs = config.scrape_jobs("127.0.0.1:9090", &global);
        assert_eq!(jobs.len(), 2);
        assert_eq!(
            (jobs[0].job_name.as_str(), jobs[0].metrics_path.as_str()),
            ("redis", "/exporters/redis/scrape")
        );
        assert_eq!(jobs[0].static_configs[1].targets, ["127.0.0.1:9090"]);
        assert_eq!(
            jobs[0].static_configs[1].labels,
            [
                (
                    "__param_target".to_string(),
                    "rediss://cache-2:6380".to_string()
                ),
                ("instance".to_string(), "rediss://cache-2:6380".to_string())
            ]
        );
        assert_eq!(jobs[1].static_configs[0].labels[0].1, "metadata");
        let mut off = config.clone();
        off.redis.scrape = false;
        assert_eq!(off.scrape_jobs("x:1", &global).len(), 1);
        assert!(
            ExportersConfig::default()
                .scrape_jobs("x:1", &global)
                .is_empty()
        );
    }

    #[test]
    fn exporter_instance_errors_name_the_line() {
        let cases = [
            (
                "exporters:\n  redis:\n    instances:\n      - address: redis://u:p@h:1\n",
                "osprey.yml:4: exporters.redis.instances[0].address: credentials go in user",
            ),
            (
                "exporters:\n  redis:\n    instances:\n      - address: http://h:1\n",
                "osprey.yml:4: exporters.redis.instances[0].address: scheme \"http\"",
            ),
            (
                "exporters:\n  redis:\n    instances:\n      - address: h:1\n        tls_config: {insecure_skip_verify: true}\n",
                "osprey.yml:4: exporters.redis.instances[0]: tls_config needs a rediss:// address",
            ),
            (
                "exporters:\n  redis:\n    instances:\n      - address: rediss://h:1\n        tls_config: {server_name: x}\n",
                "osprey.yml:5: exporters.redis.instances[0].tls_config: not supported by osprey",
            ),
            (
                "exporters:\n  redis:\n    instances:\n      - address: h:1\n        password: a\n        password_file: /x\n",
                "osprey.yml:6: exporters.redis.instances[0].password_file: at most one of password and password_file",
            ),
            (
                "exporters:\n  redis:\n    instances:\n      - address: h:1\n      - address: redis://h:1\n",
                "osprey.yml:5: exporters.redis.instances[1]: instance \"redis://h:1\" is listed twice",
            ),
            (
                "exporters:\n  postgres:\n    instances:\n      - name: a\n",
                "osprey.yml:4: exporters.postgres.instances[0]: missing data_source_name",
            ),
            (
                "exporters:\n  postgres:\n    instances:\n      - data_source_name: x\n",
                "osprey.yml:4: exporters.postgres.instances[0]: missing name",
            ),
            (
                "exporters:\n  postgres:\n    instances:\n      - name: a\n        data_source_name_file: /nonexistent/dsn\n",
                "osprey.yml:5: exporters.postgres.instances[0].data_source_name_file: reading /nonexistent/dsn",
            ),
            (
                "exporters:\n  gpu: {dcgm: false}\n",
                "osprey.yml:2: exporters.gpu.dcgm: unknown field",
            ),
        ];
        for (text, want) in cases {
            let error = exporters(text, None).unwrap_err().to_string();
            assert!(
                error.starts_with(want),
                "{text}\n got: {error}\nwant: {want}"
            );
        }
    }

    #[test]
    fn an_exporter_job_name_taken_by_the_file_is_an_error() {
        let text = "scrape_configs:\n  - job_name: redis\n    static_configs: [{targets: ['h:9121']}]\nexporters:\n  redis:\n    instances: [{address: 'h:6379'}]\n";
        let error = crate::parse("osprey.yml", text, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(
                "osprey.yml:4: exporters.redis: the redis instances are scraped as job \"redis\""
            ),
            "{error}"
        );
        let off = text.replace(
            "redis:\n    instances",
            "redis:\n    scrape: false\n    instances",
        );
        assert!(crate::parse("osprey.yml", &off, None).is_ok());
    }

    #[test]
    fn exporters_section_without_modules_means_defaults() {
        let config = ExportersConfig::default();
        let modules = config.modules();
        assert!(modules.contains_key("http_2xx") && modules.contains_key("tcp_connect"));
    }
}
