//! The pod cache of `metadata = "api"`: [`Pods`] (the bounded, clock-free bookkeeping),
//! and its reader/writer split around it ([`PodCache`] for everyone, [`CacheWriter`] for
//! the one watch task), after kube-runtime's `reflector::store`.
//!
//! Knows pods and time; nothing of the API client, files or sinks. The clock is passed in,
//! so the rules (LRU bound, deleted pods kept for a grace period, relists forgetting pods
//! that vanished meanwhile) are tested without waiting.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

use super::PodMeta;

/// A pod's key: (namespace, name).
type Key = (String, String);

/// One cached pod.
#[derive(Debug)]
struct Entry {
    meta: Arc<PodMeta>,
    /// When the API said the pod was gone; it is served until `deleted + grace`.
    deleted: Option<Instant>,
}

/// Pods by (namespace, name), at most `capacity` of them, least recently used evicted
/// first. Deleted pods stay for `grace`, then go on their next lookup.
#[derive(Debug)]
pub struct Pods {
    entries: LruCache<Key, Entry>,
    grace: Duration,
    /// Keys seen since a relist began; `None` outside a relist.
    relisting: Option<HashSet<Key>>,
}

impl Pods {
    /// An empty cache.
    pub fn new(capacity: NonZeroUsize, grace: Duration) -> Pods {
        Pods {
            entries: LruCache::new(capacity),
            grace,
            relisting: None,
        }
    }

    /// The pod, unless unknown or deleted more than `grace` before `now`.
    pub fn get(&mut self, namespace: &str, name: &str, now: Instant) -> Option<Arc<PodMeta>> {
        let key = (namespace.to_owned(), name.to_owned());
        let entry = self.entries.get(&key)?;
        match entry.deleted {
            Some(deleted) if now.saturating_duration_since(deleted) > self.grace => {
                self.entries.pop(&key);
                None
            }
            _ => Some(Arc::clone(&entry.meta)),
        }
    }

    /// Stores a live pod (added, modified, or listed), replacing what was there.
    pub fn upsert(&mut self, meta: PodMeta) {
        let key = (meta.namespace.clone(), meta.name.clone());
        if let Some(seen) = &mut self.relisting {
            seen.insert(key.clone());
        }
        let entry = Entry {
            meta: Arc::new(meta),
            deleted: None,
        };
        self.entries.put(key, entry);
    }

    /// Stores a pod fetched by a lookup, unless the watch already delivered it: the watch's
    /// copy is never older than a GET that raced with it.
    pub fn insert_if_absent(&mut self, meta: PodMeta) -> Arc<PodMeta> {
        let key = (meta.namespace.clone(), meta.name.clone());
        let entry = self.entries.get_or_insert(key, || Entry {
            meta: Arc::new(meta),
            deleted: None,
        });
        Arc::clone(&entry.meta)
    }

    /// Marks a pod deleted at `now` (stored first if it was not cached: its last lines may
    /// still come).
    pub fn delete(&mut self, meta: PodMeta, now: Instant) {
        let key = (meta.namespace.clone(), meta.name.clone());
        let entry = Entry {
            meta: Arc::new(meta),
            deleted: Some(now),
        };
        self.entries.put(key, entry);
    }

    /// A relist begins: what it does not list again was deleted while we were not watching.
    pub fn relist_started(&mut self) {
        self.relisting = Some(HashSet::new());
    }

    /// The relist is complete: pods it did not list are marked deleted at `now`.
    pub fn relist_done(&mut self, now: Instant) {
        let Some(seen) = self.relisting.take() else {
            return;
        };
        for (key, entry) in self.entries.iter_mut() {
            if entry.deleted.is_none() && !seen.contains(key) {
                entry.deleted = Some(now);
            }
        }
    }

    /// How many pods are cached (deleted ones in their grace period included).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is cached.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What the reader and the writer share.
#[derive(Debug)]
struct Shared {
    /// A std mutex: held for a map operation only, never across an `.await`.
    pods: Mutex<Pods>,
    /// Bumped on every change, so readers holding a stale answer know to ask again.
    version: AtomicU64,
    /// Set when a lookup timed out, cleared by the next watch event: while the API is
    /// unreachable, misses do not wait for it one file at a time.
    unreachable: AtomicBool,
    /// A full list has completed at least once: the cache knows the node's pods.
    synced: AtomicBool,
}

/// The reading side: a cheap `Clone` for whoever needs pods.
#[derive(Debug, Clone)]
pub struct PodCache {
    shared: Arc<Shared>,
}

/// The writing side, owned by the watch task.
#[derive(Debug)]
pub struct CacheWriter {
    shared: Arc<Shared>,
}

/// A cache holding at most `capacity` pods, deleted ones for `grace`: the reader and the
/// writer.
pub fn pod_cache(capacity: NonZeroUsize, grace: Duration) -> (PodCache, CacheWriter) {
    let shared = Arc::new(Shared {
        pods: Mutex::new(Pods::new(capacity, grace)),
        version: AtomicU64::new(0),
        unreachable: AtomicBool::new(false),
        synced: AtomicBool::new(false),
    });
    let writer = CacheWriter {
        shared: Arc::clone(&shared),
    };
    (PodCache { shared }, writer)
}

impl Shared {
    fn pods(&self) -> MutexGuard<'_, Pods> {
        // A panic while holding the lock leaves a consistent map (each operation is one
        // LRU call), so a poisoned lock is still usable.
        self.pods
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::Release);
    }
}

impl PodCache {
    /// The cached pod, if any; never waits for the API.
    pub fn get(&self, namespace: &str, name: &str) -> Option<Arc<PodMeta>> {
        self.shared.pods().get(namespace, name, Instant::now())
    }

    /// Changes so far: a reader that saw version `v` and missed a pod may find it once
    /// the version moved.
    pub fn version(&self) -> u64 {
        self.shared.version.load(Ordering::Acquire)
    }

    /// Stores a pod a lookup fetched (the watch's copy wins if it got there first).
    pub fn fetched(&self, meta: PodMeta) -> Arc<PodMeta> {
        let stored = self.shared.pods().insert_if_absent(meta);
        self.shared.changed();
        self.shared.unreachable.store(false, Ordering::Relaxed);
        stored
    }

    /// Whether a recent lookup timed out and no watch event came since.
    pub fn unreachable(&self) -> bool {
        self.shared.unreachable.load(Ordering::Relaxed)
    }

    /// Whether a full list of the node's pods has completed (`/readyz`).
    pub fn synced(&self) -> bool {
        self.shared.synced.load(Ordering::Relaxed)
    }

    /// Records that a lookup timed out.
    pub fn lookup_timed_out(&self) {
        self.shared.unreachable.store(true, Ordering::Relaxed);
    }
}

impl CacheWriter {
    /// A pod was added, modified, or listed.
    pub fn upsert(&mut self, meta: PodMeta) {
        self.shared.pods().upsert(meta);
        self.heard_from_api();
    }

    /// A pod was deleted.
    pub fn delete(&mut self, meta: PodMeta) {
        self.shared.pods().delete(meta, Instant::now());
        self.heard_from_api();
    }

    /// A relist begins.
    pub fn relist_started(&mut self) {
        self.shared.pods().relist_started();
        self.shared.unreachable.store(false, Ordering::Relaxed);
    }

    /// A relist completed.
    pub fn relist_done(&mut self) {
        self.shared.pods().relist_done(Instant::now());
        self.shared.synced.store(true, Ordering::Relaxed);
        self.heard_from_api();
    }

    fn heard_from_api(&self) {
        self.shared.changed();
        self.shared.unreachable.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, uid: &str) -> PodMeta {
        PodMeta {
            namespace: "shop".into(),
            name: name.into(),
            uid: uid.into(),
            ..PodMeta::default()
        }
    }

    fn pods(capacity: usize) -> Pods {
        let capacity = NonZeroUsize::new(capacity).expect("not zero");
        Pods::new(capacity, Duration::from_secs(60))
    }

    fn uid(pods: &mut Pods, name: &str, now: Instant) -> Option<String> {
        pods.get("shop", name, now).map(|meta| meta.uid.clone())
    }

    #[test]
    fn a_deleted_pod_is_served_for_its_grace_period_and_then_forgotten() {
        let mut pods = pods(8);
        let t0 = Instant::now();
        pods.delete(pod("web-1", "a"), t0);
        let within = t0 + Duration::from_secs(60);
        assert_eq!(uid(&mut pods, "web-1", within).as_deref(), Some("a"));
        let after = t0 + Duration::from_secs(61);
        assert_eq!(uid(&mut pods, "web-1", after), None);
        assert!(pods.is_empty());
    }

    #[test]
    fn the_least_recently_used_pod_goes_when_the_cache_is_full() {
        let mut pods = pods(2);
        let now = Instant::now();
        pods.upsert(pod("web-1", "a"));
        pods.upsert(pod("web-2", "b"));
        assert!(uid(&mut pods, "web-1", now).is_some());
        pods.upsert(pod("web-3", "c"));
        assert_eq!(pods.len(), 2);
        assert_eq!(uid(&mut pods, "web-2", now), None);
        assert!(uid(&mut pods, "web-1", now).is_some());
    }

    #[test]
    fn a_recreated_pod_replaces_the_deleted_one_of_the_same_name() {
        let mut pods = pods(8);
        let t0 = Instant::now();
        pods.delete(pod("web-1", "old"), t0);
        pods.upsert(pod("web-1", "new"));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(uid(&mut pods, "web-1", later).as_deref(), Some("new"));
    }

    #[test]
    fn a_relist_marks_pods_it_no_longer_lists_as_deleted() {
        let mut pods = pods(8);
        let t0 = Instant::now();
        pods.upsert(pod("stays", "a"));
        pods.upsert(pod("vanished", "b"));
        pods.relist_started();
        pods.upsert(pod("stays", "a"));
        pods.relist_done(t0);
        let within = t0 + Duration::from_secs(30);
        assert!(uid(&mut pods, "vanished", within).is_some());
        let after = t0 + Duration::from_secs(61);
        assert!(uid(&mut pods, "stays", after).is_some());
        assert_eq!(uid(&mut pods, "vanished", after), None);
    }

    #[test]
    fn a_fetched_pod_does_not_overwrite_what_the_watch_delivered() {
        let mut pods = pods(8);
        pods.upsert(pod("web-1", "from-watch"));
        let stored = pods.insert_if_absent(pod("web-1", "from-get"));
        assert_eq!(stored.uid, "from-watch");
        let fetched = pods.insert_if_absent(pod("web-2", "from-get"));
        assert_eq!(fetched.uid, "from-get");
    }

    #[test]
    fn writes_move_the_version_readers_compare() {
        let capacity = NonZeroUsize::new(4).expect("not zero");
        let (reader, mut writer) = pod_cache(capacity, Duration::from_secs(1));
        let before = reader.version();
        writer.upsert(pod("web-1", "a"));
        assert_ne!(reader.version(), before);
        assert!(reader.clone().get("shop", "web-1").is_some());
    }
}
