//! Subscriptions to a shared watch that never stall.
//!
//! kube-runtime 5.0's `ReflectHandle` (the stream a `store_shared` subscriber reads)
//! receives the reference of a changed object and then looks it up in the cache. When the
//! object is no longer there (it changed and was deleted right after: a finalizer removed
//! from a deleted object gives exactly that pair of events), it answers `Pending` without
//! having arranged to be woken: the message is consumed, and the subscriber sleeps until
//! something else happens to poll it. A controller whose only busy input is that stream
//! then misses every later change of every object (seen here as a Tenant whose
//! annotations went unnoticed for minutes after another Tenant of the same name was
//! deleted).
//!
//! [`Rewake`] wraps such a stream: when it answers `Pending`, it is polled once more at
//! once (which, after a consumed message, either yields the next object or registers a
//! waker on the empty channel), and again after [`REPOLL`] should several such messages
//! come in a row. An idle subscription costs one poll per [`REPOLL`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;

/// How often an idle subscription is polled again, at most.
pub const REPOLL: Duration = Duration::from_secs(1);

/// A stream that is polled again when it may have gone to sleep without a waker.
pub struct Rewake<S> {
    inner: Pin<Box<S>>,
    timer: Pin<Box<tokio::time::Sleep>>,
}

/// Wraps `inner` (a shared-store subscription) in [`Rewake`].
pub fn rewake<S: Stream>(inner: S) -> Rewake<S> {
    Rewake {
        inner: Box::pin(inner),
        timer: Box::pin(tokio::time::sleep(REPOLL)),
    }
}

impl<S: Stream> Stream for Rewake<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        loop {
            for _ in 0..2 {
                if let Poll::Ready(item) = self.inner.as_mut().poll_next(cx) {
                    return Poll::Ready(item);
                }
            }
            // Still nothing: look again after a while, whatever the stream arranged.
            match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    let next = tokio::time::Instant::now() + REPOLL;
                    self.timer.as_mut().reset(next);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Like the shared-store subscription: answers `Pending` without a waker the first
    /// `stalls` times, then yields an item.
    struct Forgetful {
        stalls: Arc<AtomicUsize>,
    }

    impl Stream for Forgetful {
        type Item = u32;
        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<u32>> {
            if self.stalls.load(Ordering::SeqCst) == 0 {
                return Poll::Ready(Some(7));
            }
            self.stalls.fetch_sub(1, Ordering::SeqCst);
            Poll::Pending
        }
    }

    /// A waker that counts its wakes.
    struct Counter(AtomicUsize);

    impl std::task::Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Polls `stream` once, lets time pass, and says how often it asked to be woken.
    async fn wakes_after_one_poll<S: Stream<Item = u32> + Unpin>(stream: &mut S) -> usize {
        let counter = Arc::new(Counter(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut *stream).poll_next(&mut cx).is_pending());
        tokio::time::sleep(REPOLL * 2).await;
        counter.0.load(Ordering::SeqCst)
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_that_forgets_to_wake_is_polled_again() {
        // One stall: the immediate second poll gets the item.
        let stalls = Arc::new(AtomicUsize::new(1));
        let mut once = rewake(Forgetful {
            stalls: stalls.clone(),
        });
        assert_eq!(once.next().await, Some(7));

        // Many stalls: the bare stream never asks to be woken again, the wrapped one does
        // (and then yields).
        let mut bare = Forgetful {
            stalls: Arc::new(AtomicUsize::new(5)),
        };
        assert_eq!(
            wakes_after_one_poll(&mut bare).await,
            0,
            "the bare stream sleeps"
        );
        stalls.store(5, Ordering::SeqCst);
        let mut wrapped = rewake(Forgetful { stalls });
        assert!(
            wakes_after_one_poll(&mut wrapped).await >= 1,
            "the wrapper wakes"
        );
        assert_eq!(wrapped.next().await, Some(7));
    }
}
