//! Embedded durable store: a redb file. The default of `posterior serve`:
//! state survives a restart (and a kill -9) with no server to run.
//!
//! Durability and speed: every write is committed with redb's immediate
//! durability (fsync) before it is acknowledged. To keep rewards fast, all
//! writes go through one writer thread that *group-commits*: it takes every
//! write queued while the previous commit was syncing and applies them in a
//! single transaction, so N concurrent rewards cost one fsync, not N.
//! Reads use redb's MVCC read transactions and never wait for the writer.
//!
//! Tables:
//! - `experiments`: name → definition (JSON)
//! - `incarnations`: name → (incarnation id, arm count): what a reward checks
//! - `evidence`: (name, arm) → (a, b, c, count, t_ms)
//! - `dedupe`: (name, decision key) → expiry; `dedupe_expiry`: (expiry, name, key) → () for pruning
//! - `studies`: name → study (JSON)
//! - `history`: (name, interval start ms) → the point's stored form
//!   (`bandit::history::encode`)
//! - `units`: (name, incarnation id, unit) → (arm, propensity, expiry ms):
//!   sticky units; `unit_expiry`: (expiry, name, id, unit) → () for pruning.
//!   Created at the first sticky assignment (a reader that finds no table
//!   finds no assignment).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use async_trait::async_trait;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use tokio::sync::oneshot;

use super::{
    AssignUnit, Assignment, Created, ExperimentState, RewardOutcome, RewardUpdate, Store,
    StoreError,
};
use crate::bandit::history::{self, HistoryPoint};
use crate::bandit::{Evidence, ExperimentDef};
use crate::bo::StudyState;

const EXPERIMENTS: TableDefinition<&str, &str> = TableDefinition::new("experiments");
const INCARNATIONS: TableDefinition<&str, (u64, u32)> = TableDefinition::new("incarnations");
/// An arm's evidence as stored: (a, b, c, count, t_ms).
type EvidenceRow = (f64, f64, f64, u64, i64);
const EVIDENCE: TableDefinition<(&str, u32), EvidenceRow> = TableDefinition::new("evidence");
const DEDUPE: TableDefinition<(&str, &[u8; 16]), i64> = TableDefinition::new("dedupe");
const DEDUPE_EXPIRY: TableDefinition<(i64, &str, &[u8; 16]), ()> =
    TableDefinition::new("dedupe_expiry");
const STUDIES: TableDefinition<&str, &str> = TableDefinition::new("studies");
/// Settings the service keeps in the file: the decision-signing key.
const SETTINGS: TableDefinition<&str, &[u8]> = TableDefinition::new("settings");
/// History points: (name, interval start ms) → stored form.
const HISTORY: TableDefinition<(&str, i64), &str> = TableDefinition::new("history");

/// Writes applied in one group commit at most: bounds the latency a write
/// waits behind others, and the transaction's size.
const MAX_GROUP: usize = 512;
/// Expired dedupe records dropped per group commit: enough to keep up with
/// any reward rate the writer can sustain, small enough to not stall it.
const PRUNE_PER_COMMIT: usize = 1024;

type Reply = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
/// A write: runs inside the group transaction and returns what to tell its
/// caller once the commit's outcome is known.
type Job = Box<dyn FnOnce(&WriteTransaction, i64) -> Result<Reply, redb::Error> + Send>;

pub struct EmbeddedStore {
    db: Arc<Database>,
    jobs: mpsc::Sender<Job>,
}

fn io<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Unavailable(format!("embedded store: {e}"))
}

fn corrupt<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Corrupt(format!("embedded store: {e}"))
}

impl EmbeddedStore {
    /// Open (or create) the database file and start the writer thread.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir).map_err(|e| io(format!("{}: {e}", dir.display())))?;
        }
        let db = Database::create(path).map_err(|e| io(format!("{}: {e}", path.display())))?;
        // Create every table up front so readers never meet a missing one.
        let tx = db.begin_write().map_err(io)?;
        {
            tx.open_table(EXPERIMENTS).map_err(io)?;
            tx.open_table(INCARNATIONS).map_err(io)?;
            tx.open_table(EVIDENCE).map_err(io)?;
            tx.open_table(DEDUPE).map_err(io)?;
            tx.open_table(DEDUPE_EXPIRY).map_err(io)?;
            tx.open_table(STUDIES).map_err(io)?;
            tx.open_table(SETTINGS).map_err(io)?;
            tx.open_table(HISTORY).map_err(io)?;
        }
        tx.commit().map_err(io)?;
        let db = Arc::new(db);
        let (jobs, rx) = mpsc::channel::<Job>();
        let wdb = db.clone();
        std::thread::Builder::new()
            .name("posterior-embedded-writer".into())
            .spawn(move || writer(wdb, rx))
            .map_err(io)?;
        Ok(EmbeddedStore { db, jobs })
    }

    /// The decision-signing key kept in the file: the first start stores
    /// `proposed`, later starts read it back, so ids survive restarts.
    async fn stored_secret(&self, proposed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let proposed = proposed.to_vec();
        self.write(move |tx, _| {
            let mut t = tx.open_table(SETTINGS)?;
            if let Some(cur) = t.get("decision_secret")? {
                return Ok(cur.value().to_vec());
            }
            t.insert("decision_secret", proposed.as_slice())?;
            Ok(proposed)
        })
        .await
    }

    /// Every key of a name → JSON table, in key order (sorted).
    fn names(&self, table: TableDefinition<&str, &str>) -> Result<Vec<String>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(table).map_err(io)?;
        let mut names = Vec::new();
        for e in t.iter().map_err(io)? {
            names.push(e.map_err(io)?.0.value().to_string());
        }
        Ok(names)
    }

    /// Queue a write and wait for its durable commit.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&WriteTransaction, i64) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel::<Result<T, StoreError>>();
        let job: Job = Box::new(move |wtx, now| {
            let out = f(wtx, now)?;
            Ok(Box::new(move |committed: Result<(), StoreError>| {
                let _ = tx.send(committed.map(|()| out));
            }) as Reply)
        });
        self.jobs
            .send(job)
            .map_err(|_| StoreError::Unavailable("embedded store writer stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("embedded store writer dropped a write".into()))?
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The writer thread: group commits until every sender is gone.
fn writer(db: Arc<Database>, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let now = now_ms();
        let result = (|| -> Result<Vec<Reply>, redb::Error> {
            let tx = db.begin_write()?;
            let mut replies = Vec::with_capacity(batch.len());
            for job in batch.drain(..) {
                replies.push(job(&tx, now)?);
            }
            prune_dedupe(&tx, now)?;
            tx.commit()?;
            Ok(replies)
        })();
        match result {
            Ok(replies) => replies.into_iter().for_each(|r| r(Ok(()))),
            Err(e) => {
                // The transaction is gone: none of the batch was applied.
                // Jobs not yet run were dropped with `batch`; their callers
                // see a dropped reply as Unavailable.
                tracing::error!(error = %e, "embedded store commit failed");
            }
        }
    }
}

fn prune_dedupe(tx: &WriteTransaction, now: i64) -> Result<(), redb::Error> {
    let mut idx = tx.open_table(DEDUPE_EXPIRY)?;
    let mut dedupe = tx.open_table(DEDUPE)?;
    let mut expired: Vec<(i64, String, [u8; 16])> = Vec::new();
    for entry in idx
        .range::<(i64, &str, &[u8; 16])>(..(now, "", &[0u8; 16]))?
        .take(PRUNE_PER_COMMIT)
    {
        let (k, _) = entry?;
        let (exp, name, key) = k.value();
        expired.push((exp, name.to_string(), *key));
    }
    for (exp, name, key) in expired {
        idx.remove((exp, name.as_str(), &key))?;
        dedupe.remove((name.as_str(), &key))?;
    }
    Ok(())
}

/// What a create answers: nothing stood under the name, or what did (JSON).
fn created<T: serde::de::DeserializeOwned>(
    existing: Option<String>,
) -> Result<Created<T>, StoreError> {
    match existing {
        None => Ok(Created::Created),
        Some(j) => Ok(Created::Exists(Box::new(
            serde_json::from_str(&j).map_err(corrupt)?,
        ))),
    }
}

fn to_tuple(e: &Evidence) -> EvidenceRow {
    (e.a, e.b, e.c, e.count, e.t_ms)
}

fn from_tuple(t: EvidenceRow) -> Evidence {
    Evidence {
        a: t.0,
        b: t.1,
        c: t.2,
        count: t.3,
        t_ms: t.4,
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    async fn create_experiment(
        &self,
        def: &ExperimentDef,
    ) -> Result<Created<ExperimentDef>, StoreError> {
        let json = serde_json::to_string(def).map_err(corrupt)?;
        let def = def.clone();
        let existing = self
            .write(move |tx, _| {
                let mut t = tx.open_table(EXPERIMENTS)?;
                if let Some(cur) = t.get(def.name.as_str())? {
                    return Ok(Some(cur.value().to_string()));
                }
                t.insert(def.name.as_str(), json.as_str())?;
                tx.open_table(INCARNATIONS)?
                    .insert(def.name.as_str(), (def.id, def.arms.len() as u32))?;
                let mut ev = tx.open_table(EVIDENCE)?;
                for i in 0..def.arms.len() {
                    ev.insert(
                        (def.name.as_str(), i as u32),
                        to_tuple(&Evidence::default()),
                    )?;
                }
                Ok(None)
            })
            .await?;
        created(existing)
    }

    async fn experiment(&self, name: &str) -> Result<Option<ExperimentState>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let defs = tx.open_table(EXPERIMENTS).map_err(io)?;
        let Some(json) = defs.get(name).map_err(io)? else {
            return Ok(None);
        };
        let def: ExperimentDef = serde_json::from_str(json.value()).map_err(corrupt)?;
        let mut evidence = vec![Evidence::default(); def.arms.len()];
        let ev = tx.open_table(EVIDENCE).map_err(io)?;
        for entry in ev.range((name, 0u32)..=(name, u32::MAX)).map_err(io)? {
            let (k, v) = entry.map_err(io)?;
            let i = k.value().1 as usize;
            if i < evidence.len() {
                evidence[i] = from_tuple(v.value());
            }
        }
        Ok(Some(ExperimentState { def, evidence }))
    }

    async fn list_experiments(&self) -> Result<Vec<String>, StoreError> {
        self.names(EXPERIMENTS)
    }

    async fn delete_experiment(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |tx, _| {
            let existed = tx.open_table(EXPERIMENTS)?.remove(name.as_str())?.is_some();
            tx.open_table(INCARNATIONS)?.remove(name.as_str())?;
            tx.open_table(EVIDENCE)?
                .retain_in((name.as_str(), 0u32)..=(name.as_str(), u32::MAX), |_, _| {
                    false
                })?;
            tx.open_table(HISTORY)?.retain_in(
                (name.as_str(), i64::MIN)..=(name.as_str(), i64::MAX),
                |_, _| false,
            )?;
            Ok(existed)
        })
        .await
    }

    async fn update_definition(
        &self,
        old: &ExperimentDef,
        new: &ExperimentDef,
    ) -> Result<bool, StoreError> {
        let old_json = serde_json::to_string(old).map_err(corrupt)?;
        let new_json = serde_json::to_string(new).map_err(corrupt)?;
        let new = new.clone();
        let old_arms = old.arms.len();
        self.write(move |tx, _| {
            let mut t = tx.open_table(EXPERIMENTS)?;
            let same = t
                .get(new.name.as_str())?
                .is_some_and(|cur| cur.value() == old_json);
            if !same {
                return Ok(false);
            }
            t.insert(new.name.as_str(), new_json.as_str())?;
            tx.open_table(INCARNATIONS)?
                .insert(new.name.as_str(), (new.id, new.arms.len() as u32))?;
            let mut ev = tx.open_table(EVIDENCE)?;
            for i in old_arms..new.arms.len() {
                ev.insert(
                    (new.name.as_str(), i as u32),
                    to_tuple(&Evidence::default()),
                )?;
            }
            Ok(true)
        })
        .await
    }

    async fn reward(&self, u: &RewardUpdate) -> Result<RewardOutcome, StoreError> {
        let (exp, arm) = (u.experiment.clone(), u.arm);
        let u = u.clone();
        let r = self
            .write(move |tx, _| {
                let name = u.experiment.as_str();
                let inc = tx.open_table(INCARNATIONS)?.get(name)?.map(|g| g.value());
                let Some((id, arms)) = inc else {
                    return Ok(Err(-1));
                };
                if id != u.experiment_id {
                    return Ok(Err(-1));
                }
                if u.arm >= arms as usize {
                    return Ok(Err(-2));
                }
                if let Some(d) = &u.dedupe {
                    let mut dd = tx.open_table(DEDUPE)?;
                    if dd.get((name, &d.key))?.is_some() {
                        return Ok(Ok(RewardOutcome::Duplicate));
                    }
                    dd.insert((name, &d.key), d.expire_at_ms)?;
                    tx.open_table(DEDUPE_EXPIRY)?
                        .insert((d.expire_at_ms, name, &d.key), ())?;
                }
                let mut ev = tx.open_table(EVIDENCE)?;
                let key = (name, u.arm as u32);
                let cur = ev
                    .get(key)?
                    .map(|g| from_tuple(g.value()))
                    .unwrap_or_default();
                let next = cur.apply(u.delta, u.now_ms, u.half_life_ms);
                ev.insert(key, to_tuple(&next))?;
                Ok(Ok(RewardOutcome::Applied))
            })
            .await?;
        r.map_err(|code| {
            if code == -1 {
                StoreError::NotFound(format!("experiment: {exp:?} not found (deleted?)"))
            } else {
                StoreError::NotFound(format!("arm: index {arm} not in {exp:?}"))
            }
        })
    }

    async fn create_study(&self, study: &StudyState) -> Result<Created<StudyState>, StoreError> {
        let json = serde_json::to_string(study).map_err(corrupt)?;
        let name = study.def.name.clone();
        let existing = self
            .write(move |tx, _| {
                let mut t = tx.open_table(STUDIES)?;
                if let Some(cur) = t.get(name.as_str())? {
                    return Ok(Some(cur.value().to_string()));
                }
                t.insert(name.as_str(), json.as_str())?;
                Ok(None)
            })
            .await?;
        created(existing)
    }

    async fn study(&self, name: &str) -> Result<Option<StudyState>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(STUDIES).map_err(io)?;
        match t.get(name).map_err(io)? {
            None => Ok(None),
            Some(j) => Ok(Some(serde_json::from_str(j.value()).map_err(corrupt)?)),
        }
    }

    async fn save_study(&self, study: &StudyState) -> Result<bool, StoreError> {
        let json = serde_json::to_string(study).map_err(corrupt)?;
        let name = study.def.name.clone();
        let expected = study.revision.saturating_sub(1);
        let saved = self
            .write(move |tx, _| {
                let mut t = tx.open_table(STUDIES)?;
                let cur: Option<StudyState> = t
                    .get(name.as_str())?
                    .and_then(|g| serde_json::from_str(g.value()).ok());
                if cur.is_none_or(|c| c.revision != expected) {
                    return Ok(false);
                }
                t.insert(name.as_str(), json.as_str())?;
                Ok(true)
            })
            .await?;
        Ok(saved)
    }

    async fn list_studies(&self) -> Result<Vec<String>, StoreError> {
        self.names(STUDIES)
    }

    async fn delete_study(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_string();
        self.write(move |tx, _| Ok(tx.open_table(STUDIES)?.remove(name.as_str())?.is_some()))
            .await
    }

    async fn shared_secret(&self, proposed: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.stored_secret(proposed).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn append_history(
        &self,
        experiment: &str,
        point: &HistoryPoint,
        retention_points: usize,
    ) -> Result<bool, StoreError> {
        self.append_point(experiment, point, retention_points).await
    }

    async fn history(
        &self,
        experiment: &str,
        since_ms: Option<i64>,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        self.read_history(experiment, since_ms)
    }

    async fn assign_unit(&self, a: &AssignUnit<'_>) -> Result<Assignment, StoreError> {
        // A repeat is a read transaction: no write, no fsync.
        if let Some(cur) = self.live_unit(a, now_ms())? {
            return Ok(cur);
        }
        let (experiment, id, unit) = (
            a.experiment.to_string(),
            a.experiment_id,
            a.unit.to_string(),
        );
        let (proposed, replace, ttl) = (a.proposed, a.replace, a.ttl_ms);
        self.write(move |tx, now| {
            let key = (experiment.as_str(), id, unit.as_str());
            let mut units = tx.open_table(UNITS)?;
            if let Some((arm, p, expires)) = units.get(key)?.map(|v| v.value())
                && expires > now
                && Some(arm as usize) != replace
            {
                return Ok(Assignment {
                    arm: arm as usize,
                    propensity: p,
                });
            }
            let expires = now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX));
            units.insert(key, (proposed.arm as u32, proposed.propensity, expires))?;
            let mut idx = tx.open_table(UNIT_EXPIRY)?;
            idx.insert((expires, experiment.as_str(), id, unit.as_str()), ())?;
            prune_units(&mut units, &mut idx, now)?;
            Ok(proposed)
        })
        .await
    }
}

const UNITS: TableDefinition<(&str, u64, &str), (u32, f64, i64)> = TableDefinition::new("units");
const UNIT_EXPIRY: TableDefinition<(i64, &str, u64, &str), ()> =
    TableDefinition::new("unit_expiry");
/// Expired sticky assignments dropped per new assignment: more than one, so
/// the table shrinks whenever units expire faster than new ones arrive.
const PRUNE_UNITS_PER_WRITE: usize = 16;

impl EmbeddedStore {
    /// The unit's live assignment, unless absent, expired or to be replaced.
    fn live_unit(&self, a: &AssignUnit<'_>, now: i64) -> Result<Option<Assignment>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let units = match tx.open_table(UNITS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        let Some((arm, propensity, expires)) = units
            .get((a.experiment, a.experiment_id, a.unit))
            .map_err(io)?
            .map(|v| v.value())
        else {
            return Ok(None);
        };
        if expires <= now || Some(arm as usize) == a.replace {
            return Ok(None);
        }
        Ok(Some(Assignment {
            arm: arm as usize,
            propensity,
        }))
    }
}

/// Drop a few expired assignments (the index may list a unit whose
/// assignment was since renewed: only an entry with that very expiry goes).
fn prune_units(
    units: &mut redb::Table<'_, (&'static str, u64, &'static str), (u32, f64, i64)>,
    idx: &mut redb::Table<'_, (i64, &'static str, u64, &'static str), ()>,
    now: i64,
) -> Result<(), redb::Error> {
    let mut expired: Vec<(i64, String, u64, String)> = Vec::new();
    for entry in idx
        .range::<(i64, &str, u64, &str)>(..(now, "", 0u64, ""))?
        .take(PRUNE_UNITS_PER_WRITE)
    {
        let (k, _) = entry?;
        let (e, name, id, unit) = k.value();
        expired.push((e, name.to_string(), id, unit.to_string()));
    }
    for (e, name, id, unit) in expired {
        idx.remove((e, name.as_str(), id, unit.as_str()))?;
        let key = (name.as_str(), id, unit.as_str());
        if units.get(key)?.is_some_and(|v| v.value().2 == e) {
            units.remove(key)?;
        }
    }
    Ok(())
}

impl EmbeddedStore {
    async fn append_point(
        &self,
        experiment: &str,
        point: &HistoryPoint,
        retention_points: usize,
    ) -> Result<bool, StoreError> {
        let name = experiment.to_string();
        let point = point.clone();
        let keep = retention_points.max(1);
        let r = self
            .write(move |tx, _| {
                if tx.open_table(EXPERIMENTS)?.get(name.as_str())?.is_none() {
                    return Ok(Err(StoreError::NotFound(format!(
                        "experiment: {name:?} not found (deleted?)"
                    ))));
                }
                let mut t = tx.open_table(HISTORY)?;
                let key = (name.as_str(), point.time_ms);
                let existing = t.get(key)?.map(|g| g.value().to_string());
                if let Some(cur) = existing {
                    let mut cur = match history::decode(&cur) {
                        Ok(p) => p,
                        Err(e) => return Ok(Err(StoreError::Corrupt(e))),
                    };
                    cur.add_decisions(&point);
                    t.insert(key, history::encode(&cur).as_str())?;
                    return Ok(Ok(false));
                }
                t.insert(key, history::encode(&point).as_str())?;
                let all = (name.as_str(), i64::MIN)..=(name.as_str(), i64::MAX);
                let n = t.range(all.clone())?.count();
                if n > keep {
                    // The oldest points beyond the bound: keys sort by time.
                    let mut cut = i64::MIN;
                    for entry in t.range(all)?.take(n - keep) {
                        cut = entry?.0.value().1;
                    }
                    t.retain_in((name.as_str(), i64::MIN)..=(name.as_str(), cut), |_, _| {
                        false
                    })?;
                }
                Ok(Ok(true))
            })
            .await?;
        r
    }

    fn read_history(
        &self,
        experiment: &str,
        since_ms: Option<i64>,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let tx = self.db.begin_read().map_err(io)?;
        let t = tx.open_table(HISTORY).map_err(io)?;
        let from = (experiment, since_ms.unwrap_or(i64::MIN));
        let mut out = Vec::new();
        for entry in t.range(from..=(experiment, i64::MAX)).map_err(io)? {
            let (_, v) = entry.map_err(io)?;
            out.push(history::decode(v.value()).map_err(StoreError::Corrupt)?);
        }
        Ok(out)
    }
}
