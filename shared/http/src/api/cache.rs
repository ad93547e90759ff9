//! The dashboard statistics cache: each of the five statistics queries (the guide's four and sync health) is kept
//! for [`STATS_CACHE_TTL`](super::STATS_CACHE_TTL), and every write through the API invalidates them all, on every
//! instance.
//!
//! The cache lives in each process (each Lambda instance), but its invalidation is shared: every API write bumps a
//! generation counter in PostgreSQL (crmsync.dashboard_cache_generation) inside its own transaction, and each stats
//! request reads that counter first (one primary-key lookup). A cached value is served only while the counter still
//! has the value it was loaded under. Because the bump commits with the write, a load that read the data from
//! before the write also read the generation from before it, so it is cached under a generation that is already
//! stale: invalidation cannot race a load into keeping old data.
//!
//! Why not a general cache crate: the cache holds five fixed slots, and its one subtle rule is the generation, not
//! the TTL. Concurrent misses of one slot wait for a single load (a per-slot async mutex) instead of all querying
//! the database. [`StatsCache::invalidate`] also forgets this process's values without a write (the benchmark
//! uses it to measure uncached requests).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crmsync_db::crm::{PipelineStage, RecentActivity, SyncHealth, TopCompany, WinRateMonth};
use tokio::sync::Mutex;

/// What a cached value is valid under: the database's shared generation and this process's own invalidations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Generation {
    shared: i64,
    local: u64,
}

/// One cached value: what was loaded, when, and under which generation.
struct Entry<T> {
    value: Arc<T>,
    loaded_at: Instant,
    generation: Generation,
}

/// A cache slot for one query.
pub struct Slot<T> {
    entry: Mutex<Option<Entry<T>>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self {
            entry: Mutex::new(None),
        }
    }
}

/// Whether a value came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
}

/// The five statistics slots and this process's invalidation count.
pub struct StatsCache {
    ttl: Duration,
    local_generation: AtomicU64,
    pub(crate) pipeline: Slot<Vec<PipelineStage>>,
    pub(crate) top_companies: Slot<Vec<TopCompany>>,
    pub(crate) recent_activities: Slot<Vec<RecentActivity>>,
    pub(crate) win_rate: Slot<Vec<WinRateMonth>>,
    pub(crate) sync_health: Slot<SyncHealth>,
}

impl StatsCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            local_generation: AtomicU64::new(0),
            pipeline: Slot::default(),
            top_companies: Slot::default(),
            recent_activities: Slot::default(),
            win_rate: Slot::default(),
            sync_health: Slot::default(),
        }
    }

    /// Forgets every value this process has cached (other instances keep theirs: API writes invalidate all of them
    /// through the shared generation instead). A load running meanwhile is returned but not kept.
    pub fn invalidate(&self) {
        self.local_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The slot's value if it is younger than the TTL and was loaded under `shared_generation` (the database's
    /// current one, read before this call) with no local invalidation since; otherwise loads it with `load`.
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        slot: &Slot<T>,
        shared_generation: i64,
        load: F,
    ) -> Result<(Arc<T>, Lookup), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_load_at(slot, shared_generation, Instant::now(), load).await
    }

    async fn get_or_load_at<T, E, F, Fut>(
        &self,
        slot: &Slot<T>,
        shared_generation: i64,
        now: Instant,
        load: F,
    ) -> Result<(Arc<T>, Lookup), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut entry = slot.entry.lock().await;
        let generation = Generation {
            shared: shared_generation,
            local: self.local_generation.load(Ordering::Acquire),
        };
        if let Some(cached) = entry.as_ref()
            && cached.generation == generation
            && now.saturating_duration_since(cached.loaded_at) < self.ttl
        {
            return Ok((Arc::clone(&cached.value), Lookup::Hit));
        }
        let value = Arc::new(load().await?);
        // A request that read the shared generation before a write committed may get here after one that read it
        // after: its value is older, so it must not replace the newer one.
        let overtaken = self.local_generation.load(Ordering::Acquire) != generation.local
            || entry
                .as_ref()
                .is_some_and(|cached| cached.generation.shared > generation.shared);
        if !overtaken {
            *entry = Some(Entry {
                value: Arc::clone(&value),
                loaded_at: now,
                generation,
            });
        }
        Ok((value, Lookup::Miss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    async fn read(cache: &StatsCache, slot: &Slot<u32>, now: Instant, value: u32) -> (u32, Lookup) {
        read_under(cache, slot, 0, now, value).await
    }

    async fn read_under(cache: &StatsCache, slot: &Slot<u32>, shared: i64, now: Instant, value: u32) -> (u32, Lookup) {
        let (value, lookup) = cache
            .get_or_load_at(slot, shared, now, || async move { Ok::<_, Infallible>(value) })
            .await
            .unwrap();
        (*value, lookup)
    }

    #[tokio::test]
    async fn a_value_is_served_from_the_cache_until_the_ttl_has_passed() {
        let cache = StatsCache::new(Duration::from_secs(300));
        let slot = Slot::default();
        let start = Instant::now();
        assert_eq!(read(&cache, &slot, start, 1).await, (1, Lookup::Miss));
        assert_eq!(
            read(&cache, &slot, start + Duration::from_secs(299), 2).await,
            (1, Lookup::Hit)
        );
        assert_eq!(
            read(&cache, &slot, start + Duration::from_secs(300), 3).await,
            (3, Lookup::Miss)
        );
    }

    #[tokio::test]
    async fn invalidation_makes_the_next_read_load_again() {
        let cache = StatsCache::new(Duration::from_secs(300));
        let slot = Slot::default();
        let now = Instant::now();
        read(&cache, &slot, now, 1).await;
        cache.invalidate();
        assert_eq!(read(&cache, &slot, now, 2).await, (2, Lookup::Miss));
        assert_eq!(read(&cache, &slot, now, 3).await, (2, Lookup::Hit));
    }

    #[tokio::test]
    async fn a_load_overtaken_by_a_write_is_returned_but_not_kept() {
        let cache = StatsCache::new(Duration::from_secs(300));
        let slot = Slot::default();
        let now = Instant::now();
        let (value, lookup) = cache
            .get_or_load_at(&slot, 0, now, || async {
                // A write commits and invalidates while this load is running.
                cache.invalidate();
                Ok::<_, Infallible>(1)
            })
            .await
            .unwrap();
        assert_eq!((*value, lookup), (1, Lookup::Miss));
        assert_eq!(read(&cache, &slot, now, 2).await, (2, Lookup::Miss));
    }

    #[tokio::test]
    async fn a_failed_load_keeps_nothing() {
        let cache = StatsCache::new(Duration::from_secs(300));
        let slot: Slot<u32> = Slot::default();
        let now = Instant::now();
        let failed = cache
            .get_or_load_at(&slot, 0, now, || async { Err::<u32, &str>("database down") })
            .await;
        assert_eq!(failed.unwrap_err(), "database down");
        assert_eq!(read(&cache, &slot, now, 7).await, (7, Lookup::Miss));
    }

    #[tokio::test]
    async fn a_value_loaded_under_another_shared_generation_is_loaded_again() {
        let cache = StatsCache::new(Duration::from_secs(300));
        let slot = Slot::default();
        let now = Instant::now();
        assert_eq!(read_under(&cache, &slot, 1, now, 1).await, (1, Lookup::Miss));
        assert_eq!(read_under(&cache, &slot, 1, now, 2).await, (1, Lookup::Hit));
        assert_eq!(read_under(&cache, &slot, 2, now, 3).await, (3, Lookup::Miss));
        assert_eq!(read_under(&cache, &slot, 2, now, 4).await, (3, Lookup::Hit));
    }

    #[tokio::test]
    async fn a_late_load_under_an_older_shared_generation_does_not_replace_a_newer_value() {
        let cache = StatsCache::new(Duration::from_secs(300));
        let slot = Slot::default();
        let now = Instant::now();
        assert_eq!(read_under(&cache, &slot, 5, now, 50).await, (50, Lookup::Miss));
        // A request that read generation 4 before the write committed finishes its load only now.
        assert_eq!(read_under(&cache, &slot, 4, now, 40).await, (40, Lookup::Miss));
        assert_eq!(read_under(&cache, &slot, 5, now, 51).await, (50, Lookup::Hit));
    }
}
