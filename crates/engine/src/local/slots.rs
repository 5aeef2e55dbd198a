//! The engine's sequence slots and their prompt cache. A slot whose sequence ended keeps that
//! sequence's tokens in the KV cache; a new request takes the free slot whose cached tokens
//! share the longest prefix with its prompt (the same system prompt, a conversation's earlier
//! turns) and processes only the rest. Each slot has its own cells, so an idle slot's cache
//! stays until the slot is used again.

use llama_cpp_2::token::LlamaToken;

/// One slot: busy with a sequence, or idle with the tokens its KV cache still holds.
#[derive(Debug)]
enum Slot {
    Busy,
    Idle {
        cached: Vec<LlamaToken>,
        /// When the slot was released (a counter): the least recent cache is evicted first.
        released: u64,
    },
}

/// The slot table of one engine.
#[derive(Debug)]
pub(super) struct Slots {
    slots: Vec<Slot>,
    releases: u64,
}

/// The slot chosen for a new prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pick {
    pub(super) slot: usize,
    /// Prompt tokens already in the slot's cache (the common prefix).
    pub(super) common: usize,
    /// Cells the slot's cache holds now.
    pub(super) cached: usize,
}

impl Slots {
    pub(super) fn new(count: usize) -> Self {
        Self {
            slots: (0..count)
                .map(|_| Slot::Idle {
                    cached: Vec::new(),
                    released: 0,
                })
                .collect(),
            releases: 0,
        }
    }

    /// The free slot for `prompt`: the longest common prefix with a cached sequence; with no
    /// common prefix, an empty slot, else the least recently used one. `None` when all are
    /// busy.
    pub(super) fn pick(&self, prompt: &[LlamaToken]) -> Option<Pick> {
        let mut best: Option<(Pick, u64)> = None;
        for (slot, state) in self.slots.iter().enumerate() {
            let Slot::Idle { cached, released } = state else {
                continue;
            };
            let pick = Pick {
                slot,
                common: common_prefix(cached, prompt),
                cached: cached.len(),
            };
            let better = match &best {
                None => true,
                Some((b, b_released)) => {
                    (pick.common, pick.cached == 0, std::cmp::Reverse(*released))
                        > (b.common, b.cached == 0, std::cmp::Reverse(*b_released))
                }
            };
            if better {
                best = Some((pick, *released));
            }
        }
        best.map(|(pick, _)| pick)
    }

    /// Marks `slot` busy.
    pub(super) fn take(&mut self, slot: usize) {
        self.slots[slot] = Slot::Busy;
    }

    /// Frees `slot`, whose KV cache now holds `cached`.
    pub(super) fn release(&mut self, slot: usize, cached: Vec<LlamaToken>) {
        self.releases += 1;
        self.slots[slot] = Slot::Idle {
            cached,
            released: self.releases,
        };
    }

    /// Cells held by idle slots' caches.
    pub(super) fn cached_cells(&self) -> usize {
        self.slots
            .iter()
            .map(|s| match s {
                Slot::Idle { cached, .. } => cached.len(),
                Slot::Busy => 0,
            })
            .sum()
    }
}

/// Length of the common prefix of two token lists.
fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: &[i32]) -> Vec<LlamaToken> {
        ids.iter().map(|&i| LlamaToken(i)).collect()
    }

    #[test]
    fn a_prompt_takes_the_slot_with_the_longest_common_prefix() {
        let mut slots = Slots::new(3);
        slots.release(0, tokens(&[1, 2, 9]));
        slots.release(1, tokens(&[1, 2, 3, 4, 8]));
        let pick = slots.pick(&tokens(&[1, 2, 3, 4, 5])).expect("a free slot");
        assert_eq!(
            pick,
            Pick {
                slot: 1,
                common: 4,
                cached: 5
            }
        );
    }

    #[test]
    fn without_a_common_prefix_an_empty_slot_is_taken_before_a_cached_one() {
        let mut slots = Slots::new(2);
        slots.release(0, tokens(&[7, 7]));
        let pick = slots.pick(&tokens(&[1])).expect("a free slot");
        assert_eq!(pick.slot, 1);
        assert_eq!(pick.common, 0);
        // With every slot cached, the least recently released one goes.
        slots.release(1, tokens(&[8, 8]));
        assert_eq!(slots.pick(&tokens(&[1])).map(|p| p.slot), Some(0));
    }

    #[test]
    fn busy_slots_are_never_picked_and_all_busy_gives_none() {
        let mut slots = Slots::new(2);
        slots.take(0);
        assert_eq!(slots.pick(&tokens(&[1])).map(|p| p.slot), Some(1));
        slots.take(1);
        assert_eq!(slots.pick(&tokens(&[1])), None);
    }
}
