"""A Ray Serve request router that keeps an editor's prompt on the replica that holds its cached prefix.

Consecutive keystrokes of one editor send prompts that share all but their last characters, and each replica's
engine reuses the state of a prompt prefix it has seen (`prefix_cache.PrefixCache`). Ray's default power-of-two
router scatters those requests over the replicas, so each replica sees only some of them and recomputes the rest.

`PrefixAffinityRouter` routes each request (its first argument is the prompt's leading text, `routing_key` of
`ray_deployment`) to the replica whose recent prompts share the longest leading text with it, when that match is
long enough to matter; a new prompt goes to the least loaded replica. When the matching replica has `imbalance`
more requests in flight than the least loaded one, the request goes to the least loaded one instead: a cold prefill
there beats waiting behind a queue.

Ray's own `PrefixCacheAffinityRouter` (`ray.serve.llm`) follows the same policy, but it imports vLLM or SGLang's
protocol models, expects the request objects of `ray.serve.llm`, and keeps its prefix tree in a separate actor it
calls synchronously on every request; this one keeps a few hundred recent keys per replica in the router's process.
"""

from __future__ import annotations

import collections
from typing import Any

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

MIN_MATCH_CHARS = 64  # a shared license header or import block is no reason to pile requests onto one replica
KEYS_PER_REPLICA = 256  # recent prompts remembered per replica (about what its prefix cache holds, and more)


def shared_chars(a: str, b: str) -> int:
    """The length of the leading text `a` and `b` share (a binary search over slice comparisons, at C speed)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class PrefixAffinityRouter(RequestRouter):
    """Route a request to the replica that served the longest matching prompt prefix, unless it is overloaded."""

    def initialize_state(self, imbalance: int = 4, min_match_chars: int = MIN_MATCH_CHARS, **kwargs: Any) -> None:
        self.imbalance = imbalance
        self.min_match_chars = min_match_chars
        self.recent: dict[ReplicaID, collections.OrderedDict[str, None]] = collections.defaultdict(
            collections.OrderedDict
        )

    def _load(self, replica: RunningReplica) -> int:
        queue_len = self.replica_queue_len_cache.get(replica.replica_id)
        return 0 if queue_len is None else queue_len

    def best_match(self, key: str, candidates: list[RunningReplica]) -> tuple[RunningReplica | None, int]:
        """The candidate whose remembered prompts share the most leading text with `key`, and how much."""
        best: RunningReplica | None = None
        best_chars = 0
        for replica in candidates:
            for seen in reversed(self.recent.get(replica.replica_id, {})):
                chars = shared_chars(key, seen)
                if chars > best_chars:
                    best, best_chars = replica, chars
        return best, best_chars

    async def choose_replicas(
        self, candidate_replicas: list[RunningReplica], pending_request: PendingRequest | None = None
    ) -> list[list[RunningReplica]]:
        by_load = sorted(candidate_replicas, key=self._load)
        key = _key_of(pending_request)
        if key is None or not by_load:
            return [by_load]
        best, chars = self.best_match(key, by_load)
        if best is None or chars < min(self.min_match_chars, len(key)):
            return [by_load]  # one rank: Ray probes them and takes the least loaded
        if self._load(best) - self._load(by_load[0]) >= self.imbalance:
            return [by_load]
        return [[best], [replica for replica in by_load if replica is not best]]

    def on_request_routed(self, pending_request: PendingRequest, replica_id: ReplicaID, result: Any) -> None:
        key = _key_of(pending_request)
        if key is None:
            return
        recent = self.recent[replica_id]
        recent[key] = None
        recent.move_to_end(key)
        while len(recent) > KEYS_PER_REPLICA:
            recent.popitem(last=False)
        for other, keys in self.recent.items():  # the prompt's newest state now lives on `replica_id` only
            if other != replica_id:
                keys.pop(key, None)

    def on_replica_actor_died(self, replica_id: ReplicaID) -> None:
        super().on_replica_actor_died(replica_id)
        self.recent.pop(replica_id, None)

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        super().update_replicas(replicas)
        live = {replica.replica_id for replica in replicas}
        for replica_id in [known for known in self.recent if known not in live]:
            del self.recent[replica_id]


def _key_of(pending_request: PendingRequest | None) -> str | None:
    if pending_request is None or not pending_request.args or not isinstance(pending_request.args[0], str):
        return None
    key: str = pending_request.args[0]
    return key


__all__ = ["PrefixAffinityRouter", "shared_chars"]
