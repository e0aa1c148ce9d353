//! Redis backend.
//!
//! Keys (every key of one experiment shares the hash tag `{name}`, so one
//! script may touch them all and Redis Cluster keeps them on one slot):
//!
//! | key | type | holds |
//! | --- | --- | --- |
//! | `posterior:{name}:def` | string | the definition, JSON |
//! | `posterior:{name}:arms` | hash | `id` → incarnation id; `<arm index>` → `"a b c count t_ms"` |
//! | `posterior:{name}:d:<issue hour>` | set, expires after the window | rewarded decisions issued in that hour (16-byte members) |
//! | `posterior:{name}:history` | sorted set | history points (`bandit::history::encode`), scored by interval start (ms) |
//! | `posterior:experiments` | set | names, for listing |
//! | `posterior:study:{name}` | hash | `rev` → revision; `state` → the study (JSON) |
//! | `posterior:studies` | set | study names, for listing |
//! | `posterior:secret` | string | the shared decision-signing key, if none is configured |
//!
//! Evidence of all arms is one small hash: ten arms fit Redis's compact
//! listpack encoding (~40 bytes per arm), and Choose reads an experiment in
//! one round trip (a pipelined GET + HGETALL).
//!
//! Every write that must be atomic is a Lua script run with EVALSHA; the
//! `redis` crate reloads it on NOSCRIPT (after a restart or failover).

use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Script, Value};

use super::{
    AssignUnit, Assignment, Created, ExperimentState, RewardOutcome, RewardUpdate, Store,
    StoreError,
};
use crate::bandit::history::{self, HistoryPoint};
use crate::bandit::{Evidence, ExperimentDef};
use crate::bo::StudyState;

/// How to reach Redis beyond its URL.
#[derive(Clone)]
pub struct RedisOptions {
    /// The redis crate's default is to wait forever; a decision service must
    /// answer UNAVAILABLE instead of hanging its callers.
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// ACL user and password; when set they replace any in the URL.
    pub username: Option<String>,
    pub password: Option<String>,
    /// For `rediss://` URLs: trust this PEM CA instead of the system roots.
    pub tls_ca_pem: Option<Vec<u8>>,
    /// For `rediss://` URLs: present this PEM certificate and key.
    pub tls_client_pem: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            connect_timeout: Duration::from_secs(2),
            response_timeout: Duration::from_secs(1),
            username: None,
            password: None,
            tls_ca_pem: None,
            tls_client_pem: None,
        }
    }
}

impl RedisOptions {
    /// The crate's TLS settings, when any file was given (otherwise a
    /// `rediss://` URL verifies against the system's roots).
    fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.tls_ca_pem.is_none() && self.tls_client_pem.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self
                .tls_client_pem
                .clone()
                .map(|(client_cert, client_key)| redis::ClientTlsConfig {
                    client_cert,
                    client_key,
                }),
            root_cert: self.tls_ca_pem.clone(),
        })
    }
}

/// The URLs in `store.redis_url`: one, or a comma-separated cluster seed list.
pub fn url_list(url: &str) -> Vec<&str> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// A Redis URL fit for logs and error messages: any password is replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // userinfo ends at the last '@' before the first '/'.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{}", &rest[at + 1..])
        }
        None => url.to_string(),
    }
}

/// One Redis, or a Redis Cluster: the same commands and scripts run on
/// either (every multi-key call stays within one `{name}` hash slot).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        p: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(p, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(p, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

pub struct RedisStore {
    conn: Conn,
    create: Script,
    update_def: Script,
    reward: Script,
    create_study: Script,
    save_study: Script,
}

const INDEX_KEY: &str = "posterior:experiments";
const STUDY_INDEX_KEY: &str = "posterior:studies";
const SECRET_KEY: &str = "posterior:secret";
const EMPTY_EVIDENCE: &str = "0 0 0 0 0";

fn def_key(name: &str) -> String {
    format!("posterior:{{{name}}}:def")
}
fn study_key(name: &str) -> String {
    format!("posterior:study:{{{name}}}")
}
fn arms_key(name: &str) -> String {
    format!("posterior:{{{name}}}:arms")
}
fn history_key(name: &str) -> String {
    format!("posterior:{{{name}}}:history")
}
/// Rewarded decisions are grouped by the hour they were issued in: one set
/// per experiment-hour costs ~60 bytes per member, against ~150 for a key
/// per decision, and a decision's bucket follows from its id alone.
const DEDUPE_BUCKET_MS: u64 = 3_600_000;

fn dedupe_bucket(name: &str, issued_ms: u64) -> String {
    format!("posterior:{{{name}}}:d:{}", issued_ms / DEDUPE_BUCKET_MS)
}

/// KEYS: def, arms. ARGV: definition JSON, incarnation id, number of arms.
/// Returns the existing definition, or nil after creating.
const CREATE_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
local args = {'id', ARGV[2]}
for i = 0, tonumber(ARGV[3]) - 1 do
  args[#args + 1] = tostring(i)
  args[#args + 1] = '0 0 0 0 0'
end
redis.call('HSET', KEYS[2], unpack(args))
return false
"#;

/// KEYS: def, arms. ARGV: old JSON, new JSON, old arm count, new arm count.
/// Compare-and-set of the definition; appended arms start with no evidence.
const UPDATE_DEF_LUA: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
for i = tonumber(ARGV[3]), tonumber(ARGV[4]) - 1 do
  redis.call('HSETNX', KEYS[2], tostring(i), '0 0 0 0 0')
end
return 1
"#;

/// KEYS: arms [, dedupe bucket]. ARGV: incarnation id, arm index, Δa, Δb,
/// Δc, now (ms), half-life (ms, 0 = none), bucket expiry (Unix ms), decision key.
/// Returns 1 applied, 0 duplicate, -1 experiment gone, -2 arm unknown.
/// The arithmetic is `Evidence::apply` in `bandit/posterior.rs`: decay to
/// now (time never runs backwards), then add.
const REWARD_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return -1 end
local cur = redis.call('HGET', KEYS[1], ARGV[2])
if not cur then return -2 end
if KEYS[2] then
  if redis.call('SADD', KEYS[2], ARGV[9]) == 0 then return 0 end
  redis.call('PEXPIREAT', KEYS[2], ARGV[8])
end
local a, b, c, n, t = string.match(cur, '^(%S+) (%S+) (%S+) (%S+) (%S+)$')
a = tonumber(a); b = tonumber(b); c = tonumber(c); n = tonumber(n); t = tonumber(t)
local now = tonumber(ARGV[6])
local hl = tonumber(ARGV[7])
if hl > 0 and now > t then
  local f = math.pow(2, -(now - t) / hl)
  a = a * f; b = b * f; c = c * f
end
if now > t then t = now end
a = a + tonumber(ARGV[3]); b = b + tonumber(ARGV[4]); c = c + tonumber(ARGV[5])
redis.call('HSET', KEYS[1], ARGV[2],
  string.format('%.17g %.17g %.17g %d %d', a, b, c, n + 1, t))
return 1
"#;

/// The bucket lives until its last possible member expires.
fn bucket_expiry(d: &super::Dedupe) -> i64 {
    let bucket_end = (d.issued_ms / DEDUPE_BUCKET_MS + 1) * DEDUPE_BUCKET_MS;
    let member_window = d.expire_at_ms - d.issued_ms as i64;
    bucket_end as i64 + member_window
}

/// KEYS: study. ARGV: revision, state JSON. Returns the existing state, or
/// nil after creating.
const CREATE_STUDY_LUA: &str = r#"
local cur = redis.call('HGET', KEYS[1], 'state')
if cur then return cur end
redis.call('HSET', KEYS[1], 'rev', ARGV[1], 'state', ARGV[2])
return false
"#;

/// KEYS: study. ARGV: expected revision, new revision, new state JSON.
/// Compare-and-set on the revision: 1 saved, 0 someone saved first.
const SAVE_STUDY_LUA: &str = r#"
if redis.call('HGET', KEYS[1], 'rev') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'state', ARGV[3])
return 1
"#;

fn study_json(s: &StudyState) -> Result<String, StoreError> {
    serde_json::to_string(s).map_err(|e| StoreError::Corrupt(format!("study: {e}")))
}

fn parse_study(json: &str) -> Result<StudyState, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("study: {e}")))
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"))
}

impl RedisStore {
    /// Connect (failing fast if Redis is unreachable now); afterwards the
    /// connection manager reconnects by itself, and requests made while
    /// Redis is down fail with `Unavailable` within the response timeout.
    ///
    /// A comma-separated list of URLs is a Redis Cluster (its seed nodes).
    pub async fn connect(url: &str, opts: &RedisOptions) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let bad_url =
            |e: redis::RedisError| StoreError::Unavailable(format!("redis {shown:?}: {e}"));
        let conn = if url.contains(',') {
            let nodes = url_list(url);
            let mut builder = redis::cluster::ClusterClient::builder(nodes)
                .connection_timeout(opts.connect_timeout)
                .response_timeout(opts.response_timeout)
                // Redirections (MOVED/ASK during resharding or failover) and
                // reconnects: a few, then report UNAVAILABLE.
                .retries(3);
            if let Some(user) = &opts.username {
                builder = builder.username(user);
            }
            if let Some(password) = &opts.password {
                builder = builder.password(password);
            }
            if let Some(certs) = opts.certificates() {
                builder = builder.certs(certs);
            }
            let client = builder.build().map_err(bad_url)?;
            Conn::Cluster(client.get_async_connection().await.map_err(unavailable)?)
        } else {
            let mut info = url.into_connection_info().map_err(bad_url)?;
            let mut settings = info.redis_settings().clone();
            if let Some(user) = &opts.username {
                settings = settings.set_username(user);
            }
            if let Some(password) = &opts.password {
                settings = settings.set_password(password);
            }
            info = info.set_redis_settings(settings);
            let client = match opts.certificates() {
                Some(certs) => redis::Client::build_with_tls(info, certs),
                None => redis::Client::open(info),
            }
            .map_err(bad_url)?;
            let cfg = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(opts.connect_timeout))
                .set_response_timeout(Some(opts.response_timeout))
                // Reconnect attempts per failure: a few quick ones, then report.
                .set_number_of_retries(2)
                .set_max_delay(Duration::from_millis(500));
            Conn::Single(
                client
                    .get_connection_manager_with_config(cfg)
                    .await
                    .map_err(unavailable)?,
            )
        };
        Ok(RedisStore {
            conn,
            create: Script::new(CREATE_LUA),
            update_def: Script::new(UPDATE_DEF_LUA),
            reward: Script::new(REWARD_LUA),
            create_study: Script::new(CREATE_STUDY_LUA),
            save_study: Script::new(SAVE_STUDY_LUA),
        })
    }

    /// The decision-signing key shared by every replica on this Redis: the
    /// first replica to start stores `proposed`; all read back the winner.
    async fn stored_secret(&self, proposed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let mut c = self.conn.clone();
        let _: bool = redis::cmd("SET")
            .arg(SECRET_KEY)
            .arg(proposed)
            .arg("NX")
            .query_async::<Option<String>>(&mut c)
            .await
            .map(|r| r.is_some())
            .map_err(unavailable)?;
        let secret: Vec<u8> = c.get(SECRET_KEY).await.map_err(unavailable)?;
        if secret.is_empty() {
            return Err(StoreError::Corrupt(format!("{SECRET_KEY} is empty")));
        }
        Ok(secret)
    }
}

fn parse_def(json: &str) -> Result<ExperimentDef, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("experiment definition: {e}")))
}

fn to_json(def: &ExperimentDef) -> Result<String, StoreError> {
    serde_json::to_string(def)
        .map_err(|e| StoreError::Corrupt(format!("experiment definition: {e}")))
}

fn parse_evidence(s: &str) -> Result<Evidence, StoreError> {
    let bad = || StoreError::Corrupt(format!("arm evidence {s:?}"));
    let mut it = s.split(' ');
    let mut f = || it.next().ok_or_else(bad);
    let a = f()?.parse::<f64>().map_err(|_| bad())?;
    let b = f()?.parse::<f64>().map_err(|_| bad())?;
    let c = f()?.parse::<f64>().map_err(|_| bad())?;
    let count = f()?.parse::<u64>().map_err(|_| bad())?;
    let t_ms = f()?.parse::<i64>().map_err(|_| bad())?;
    Ok(Evidence {
        a,
        b,
        c,
        count,
        t_ms,
    })
}

#[async_trait]
impl Store for RedisStore {
    async fn create_experiment(
        &self,
        def: &ExperimentDef,
    ) -> Result<Created<ExperimentDef>, StoreError> {
        let mut c = self.conn.clone();
        let existing: Option<String> = self
            .create
            .key(def_key(&def.name))
            .key(arms_key(&def.name))
            .arg(to_json(def)?)
            .arg(def.id.to_string())
            .arg(def.arms.len())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        // The index lives on another slot: a separate, idempotent write.
        let _: i64 = c.sadd(INDEX_KEY, &def.name).await.map_err(unavailable)?;
        match existing {
            None => Ok(Created::Created),
            Some(json) => Ok(Created::Exists(Box::new(parse_def(&json)?))),
        }
    }

    async fn experiment(&self, name: &str) -> Result<Option<ExperimentState>, StoreError> {
        let mut c = self.conn.clone();
        let (json, fields): (Option<String>, Vec<(String, String)>) = redis::pipe()
            .get(def_key(name))
            .hgetall(arms_key(name))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let Some(json) = json else { return Ok(None) };
        let def = parse_def(&json)?;
        let mut evidence = vec![Evidence::default(); def.arms.len()];
        for (k, v) in fields {
            if let Ok(i) = k.parse::<usize>()
                && i < evidence.len()
                && v != EMPTY_EVIDENCE
            {
                evidence[i] = parse_evidence(&v)?;
            }
        }
        Ok(Some(ExperimentState { def, evidence }))
    }

    async fn list_experiments(&self) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        let mut names: Vec<String> = c.smembers(INDEX_KEY).await.map_err(unavailable)?;
        names.sort();
        Ok(names)
    }

    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        // Dedupe keys are left to expire: they are unreachable once the
        // incarnation id is gone, and scanning for them would be O(keyspace).
        let n: i64 = c
            .del(&[def_key(name), arms_key(name), history_key(name)])
            .await
            .map_err(unavailable)?;
        let _: i64 = c.srem(INDEX_KEY, name).await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn update_definition(
        &self,
        old: &ExperimentDef,
        new: &ExperimentDef,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let done: i64 = self
            .update_def
            .key(def_key(&old.name))
            .key(arms_key(&old.name))
            .arg(to_json(old)?)
            .arg(to_json(new)?)
            .arg(old.arms.len())
            .arg(new.arms.len())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(done == 1)
    }

    async fn reward(&self, u: &RewardUpdate) -> Result<RewardOutcome, StoreError> {
        let mut c = self.conn.clone();
        let mut inv = self.reward.key(arms_key(&u.experiment));
        if let Some(d) = &u.dedupe {
            inv.key(dedupe_bucket(&u.experiment, d.issued_ms));
        }
        // `{:?}` of f64 prints the shortest string that parses back exactly.
        inv.arg(u.experiment_id.to_string())
            .arg(u.arm)
            .arg(format!("{:?}", u.delta.a))
            .arg(format!("{:?}", u.delta.b))
            .arg(format!("{:?}", u.delta.c))
            .arg(u.now_ms)
            .arg(u.half_life_ms)
            .arg(u.dedupe.as_ref().map_or(0, bucket_expiry))
            .arg(u.dedupe.as_ref().map_or(&[][..], |d| &d.key[..]));
        let r: i64 = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        match r {
            1 => Ok(RewardOutcome::Applied),
            0 => Ok(RewardOutcome::Duplicate),
            -1 => Err(StoreError::NotFound(format!(
                "experiment: {:?} not found (deleted?)",
                u.experiment
            ))),
            _ => Err(StoreError::NotFound(format!(
                "arm: index {} not in {:?}",
                u.arm, u.experiment
            ))),
        }
    }

    async fn create_study(&self, study: &StudyState) -> Result<Created<StudyState>, StoreError> {
        let mut c = self.conn.clone();
        let name = &study.def.name;
        let existing: Option<String> = self
            .create_study
            .key(study_key(name))
            .arg(study.revision.to_string())
            .arg(study_json(study)?)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let _: i64 = c.sadd(STUDY_INDEX_KEY, name).await.map_err(unavailable)?;
        match existing {
            None => Ok(Created::Created),
            Some(json) => Ok(Created::Exists(Box::new(parse_study(&json)?))),
        }
    }

    async fn study(&self, name: &str) -> Result<Option<StudyState>, StoreError> {
        let mut c = self.conn.clone();
        let json: Option<String> = c
            .hget(study_key(name), "state")
            .await
            .map_err(unavailable)?;
        json.map(|j| parse_study(&j)).transpose()
    }

    async fn save_study(&self, study: &StudyState) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let saved: i64 = self
            .save_study
            .key(study_key(&study.def.name))
            .arg(study.revision.saturating_sub(1).to_string())
            .arg(study.revision.to_string())
            .arg(study_json(study)?)
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(saved == 1)
    }

    async fn list_studies(&self) -> Result<Vec<String>, StoreError> {
        let mut c = self.conn.clone();
        let mut names: Vec<String> = c.smembers(STUDY_INDEX_KEY).await.map_err(unavailable)?;
        names.sort();
        Ok(names)
    }

    async fn delete_study(&self, name: &str) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let n: i64 = c.del(study_key(name)).await.map_err(unavailable)?;
        let _: i64 = c.srem(STUDY_INDEX_KEY, name).await.map_err(unavailable)?;
        Ok(n > 0)
    }

    async fn shared_secret(&self, proposed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.stored_secret(proposed).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn append_history(
        &self,
        experiment: &str,
        point: &HistoryPoint,
        retention_points: usize,
    ) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let decisions: Vec<String> = point.arms.iter().map(|a| a.decisions.to_string()).collect();
        let r: i64 = APPEND_HISTORY
            .key(def_key(experiment))
            .key(history_key(experiment))
            .arg(point.time_ms)
            .arg(history::encode(point))
            .arg(retention_points.max(1))
            .arg(decisions.join(" "))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        match r {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(StoreError::NotFound(format!(
                "experiment: {experiment:?} not found (deleted?)"
            ))),
        }
    }

    async fn history(
        &self,
        experiment: &str,
        since_ms: Option<i64>,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let mut c = self.conn.clone();
        let min = since_ms.map_or("-inf".to_string(), |s| s.to_string());
        let members: Vec<String> = c
            .zrangebyscore(history_key(experiment), min, "+inf")
            .await
            .map_err(unavailable)?;
        members
            .iter()
            .map(|m| history::decode(m).map_err(StoreError::Corrupt))
            .collect()
    }

    async fn assign_unit(&self, a: &AssignUnit<'_>) -> Result<Assignment, StoreError> {
        let mut c = self.conn.clone();
        let proposed = format!("{} {:?}", a.proposed.arm, a.proposed.propensity);
        let stored: String = ASSIGN_UNIT
            .key(unit_key(a.experiment, a.experiment_id, a.unit))
            .arg(&proposed)
            .arg(a.ttl_ms.max(1))
            .arg(a.replace.map_or(String::new(), |r| format!("{r} ")))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        parse_assignment(&stored)
    }
}

/// A sticky unit's key: under the experiment's hash tag (Cluster), with the
/// incarnation id, so a re-created experiment never reads these (they are
/// left to expire, like dedupe keys).
fn unit_key(name: &str, id: u64, unit: &str) -> String {
    format!("posterior:{{{name}}}:u:{id}:{unit}")
}

/// KEYS: unit. ARGV: "arm propensity", ttl ms, "arm " of an assignment to
/// replace (or ""). Set-if-absent (or compare-and-set on the stored arm);
/// returns the assignment in force. Redis expires it (PX).
const ASSIGN_UNIT_LUA: &str = r#"
local cur = redis.call('GET', KEYS[1])
if cur and (ARGV[3] == '' or string.sub(cur, 1, #ARGV[3]) ~= ARGV[3]) then
  return cur
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]
"#;

/// KEYS: def, history. ARGV: interval start (ms), the point's stored form,
/// points to keep, the point's decision counts ("d0 d1 ..."). Returns 1
/// when the point was created, 0 when the interval already had one (then
/// the counts were added to its decisions line, arm by arm), -1 when the
/// experiment does not exist. The member's first line is its time, so two
/// intervals never share a member; a score holds at most one member.
const APPEND_HISTORY_LUA: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local cur = redis.call('ZRANGEBYSCORE', KEYS[2], ARGV[1], ARGV[1])
if #cur == 0 then
  redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
  local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
  if extra > 0 then redis.call('ZPOPMIN', KEYS[2], extra) end
  return 1
end
local m = cur[1]
local a = string.find(m, '\n', 1, true)
local b = string.find(m, '\n', a + 1, true) or (#m + 1)
local old = {}
for x in string.gmatch(string.sub(m, a + 1, b - 1), '%S+') do old[#old + 1] = tonumber(x) end
local out = {}
local i = 0
for x in string.gmatch(ARGV[4], '%S+') do
  i = i + 1
  if i <= #old then out[i] = string.format('%d', old[i] + tonumber(x)) end
end
for j = #out + 1, #old do out[j] = string.format('%d', old[j]) end
redis.call('ZREM', KEYS[2], m)
redis.call('ZADD', KEYS[2], ARGV[1], string.sub(m, 1, a) .. table.concat(out, ' ') .. string.sub(m, b))
return 0
"#;

static APPEND_HISTORY: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(APPEND_HISTORY_LUA));

static ASSIGN_UNIT: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::new(ASSIGN_UNIT_LUA));

fn parse_assignment(s: &str) -> Result<Assignment, StoreError> {
    let bad = || StoreError::Corrupt(format!("sticky assignment {s:?}"));
    let (arm, p) = s.split_once(' ').ok_or_else(bad)?;
    Ok(Assignment {
        arm: arm.parse().map_err(|_| bad())?,
        propensity: p.parse().map_err(|_| bad())?,
    })
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact_url("rediss://app:s3cret@redis.internal:6380/0"),
            "rediss://app:***@redis.internal:6380/0"
        );
        assert_eq!(redact_url("redis://:s3cret@h:6379"), "redis://:***@h:6379");
        // A password may itself contain '@'; everything up to the last '@'
        // of the authority is credentials.
        assert_eq!(redact_url("redis://u:p@ss@h/1"), "redis://u:***@h/1");
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
        assert_eq!(
            redact_url("redis+unix:///tmp/r.sock"),
            "redis+unix:///tmp/r.sock"
        );
    }
}
