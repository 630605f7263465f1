//! A warm cache hit must not allocate: `classify` sits on the intake's hot
//! path, once per log line. Counted with a wrapping global allocator, per
//! thread so that the test harness's own threads do not interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use ecstatic_enrich::{MAX_UA_BYTES, UaClassifier};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: every call is forwarded unchanged to `System`; the counter is a
// const-initialised thread local, which does not allocate.
#[expect(
    unsafe_code,
    reason = "a GlobalAlloc impl is the only way to count allocations"
)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn warm_hits_do_not_allocate() {
    let classifier = UaClassifier::new(64);
    let long = format!(
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0{}",
        " pad".repeat(400)
    );
    assert!(long.len() > MAX_UA_BYTES);
    let agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) \
         Chrome/131.0.0.0 Safari/537.36",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "-",
        "",
        long.as_str(),
    ];
    let cold: Vec<_> = agents.iter().map(|a| classifier.classify(a)).collect();

    let before = allocations();
    for _ in 0..100 {
        for (agent, cold) in agents.iter().zip(&cold) {
            // Same answer, and (below) no allocation: a miss would have
            // stored a new key.
            assert_eq!(classifier.classify(agent), *cold, "{agent:?}");
        }
    }
    assert_eq!(allocations() - before, 0, "warm cache hits allocated");
}

#[test]
fn a_miss_does_allocate() {
    // The counter works: a fresh agent is classified and stored.
    let classifier = UaClassifier::new(64);
    let before = allocations();
    let _ = classifier.classify("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Firefox/133.0");
    assert!(allocations() > before);
}
