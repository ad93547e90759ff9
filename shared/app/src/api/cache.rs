//! The dashboard statistics cache: each of the five statistics queries (the guide's four and sync health) is kept
//! for [`STATS_CACHE_TTL`](super::STATS_CACHE_TTL), and every write through the API invalidates them all.
//!
//! Why not a general cache crate: the cache holds five fixed slots, and its one subtle rule is not the TTL but
//! invalidation racing a load. A load that was running when a write committed may have read the data from before
//! the write, so it must not be stored: each slot remembers the invalidation generation its value was loaded under,
//! and a value loaded under an older generation is handed to its caller but never kept. Concurrent misses of one
//! slot wait for a single load (a per-slot async mutex) instead of all querying the database.
//!
//! The cache lives in one process. Under Lambda each instance has its own, so a write through one instance shows
//! on another within the TTL at the latest; the guide accepts 5 minutes of staleness for these statistics.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crmsync_db::crm::{PipelineStage, RecentActivity, SyncHealth, TopCompany, WinRateMonth};
use tokio::sync::Mutex;

/// One cached value: what was loaded, when, and under which invalidation generation.
struct Entry<T> {
    value: Arc<T>,
    loaded_at: Instant,
    generation: u64,
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

/// The five statistics slots and the invalidation generation.
pub struct StatsCache {
    ttl: Duration,
    generation: AtomicU64,
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
            generation: AtomicU64::new(0),
            pipeline: Slot::default(),
            top_companies: Slot::default(),
            recent_activities: Slot::default(),
            win_rate: Slot::default(),
            sync_health: Slot::default(),
        }
    }

    /// Forgets every cached value. Call it after a write has committed: invalidating before the commit would let a
    /// load that reads the old data store it as current.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The slot's value if it is younger than the TTL and no write came after it; otherwise loads it with `load`.
    pub async fn get_or_load<T, E, F, Fut>(&self, slot: &Slot<T>, load: F) -> Result<(Arc<T>, Lookup), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.get_or_load_at(slot, Instant::now(), load).await
    }

    async fn get_or_load_at<T, E, F, Fut>(&self, slot: &Slot<T>, now: Instant, load: F) -> Result<(Arc<T>, Lookup), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut entry = slot.entry.lock().await;
        let generation = self.generation.load(Ordering::Acquire);
        if let Some(cached) = entry.as_ref()
            && cached.generation == generation
            && now.saturating_duration_since(cached.loaded_at) < self.ttl
        {
            return Ok((Arc::clone(&cached.value), Lookup::Hit));
        }
        let value = Arc::new(load().await?);
        *entry = (self.generation.load(Ordering::Acquire) == generation).then(|| Entry {
            value: Arc::clone(&value),
            loaded_at: now,
            generation,
        });
        Ok((value, Lookup::Miss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    async fn read(cache: &StatsCache, slot: &Slot<u32>, now: Instant, value: u32) -> (u32, Lookup) {
        let (value, lookup) = cache
            .get_or_load_at(slot, now, || async move { Ok::<_, Infallible>(value) })
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
            .get_or_load_at(&slot, now, || async {
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
            .get_or_load_at(&slot, now, || async { Err::<u32, &str>("database down") })
            .await;
        assert_eq!(failed.unwrap_err(), "database down");
        assert_eq!(read(&cache, &slot, now, 7).await, (7, Lookup::Miss));
    }
}
