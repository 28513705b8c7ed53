"""The engine: vLLM-style continuous batching over a KV block pool, with LoRA slots. Pure: time is passed in.

The driver alternates ``begin_step(now)`` (schedule the batch and return how long the step takes) and, that
long later, ``finish_step(now)`` (every request in the batch gains one token; finished ones free their
blocks).

Scheduling, as vLLM does it:
- requests already running are served first; when one needs a new block for its next token and none is free,
  the most recently admitted request is preempted (its blocks freed; it goes back to the front of the queue
  and is recomputed when readmitted);
- then waiting requests are admitted first come, first served while fewer than ``max_num_seqs`` run, the
  step's prefill budget (``max_num_batched_tokens``) lasts, and the KV cache has blocks for the prompt (minus
  the prefix-cached blocks) and the next token. A request that does not fit blocks the queue behind it;
- a request naming a LoRA adapter needs the adapter in one of ``max_loras`` slots. Loading one costs
  ``lora_load_ms``; an adapter with no running request may be evicted (least recently used first). A request
  whose adapter cannot get a slot is passed over, and the next waiting request is considered.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from aigw.sim.config import SimConfig
from aigw.sim.kvcache import BlockPool


class RequestRejectedError(ValueError):
    """The request can never run on this server (too long for the model or the KV cache)."""


@dataclass(eq=False, kw_only=True)
class Sequence:
    """One request inside the engine."""

    rid: int
    prompt_len: int
    block_hashes: list[bytes]
    max_tokens: int
    adapter: str | None
    arrival: float
    generated: int = 0
    blocks: list[int] = field(default_factory=list)
    first_token_at: float | None = None
    finished_at: float | None = None
    prefix_hit_tokens: int = 0
    preemptions: int = 0
    aborted: bool = False

    @property
    def done(self) -> bool:
        return self.finished_at is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenEvent:
    """``seq`` gained a token at the end of a step (``first``: its first token; ``seq.done``: its last)."""

    seq: Sequence
    first: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class StepPlan:
    """What one step does, and how long it takes."""

    duration_s: float
    running: int
    prefill_tokens: int
    admitted: int
    adapters_loaded: int


@dataclass(slots=True)
class EngineCounters:
    """Monotonic counters (vLLM's prefix cache counters count tokens)."""

    prefix_queries: int = 0
    prefix_hits: int = 0
    preemptions: int = 0
    finished: int = 0
    generated_tokens: int = 0
    prompt_tokens: int = 0


class Engine:
    """The batching engine of one replica."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.pool = BlockPool(num_blocks=config.kv_blocks, prefix_caching=config.enable_prefix_caching)
        self.waiting: deque[Sequence] = deque()
        self.running: list[Sequence] = []
        self.loaded_adapters: OrderedDict[str, None] = OrderedDict()  # least recently used first
        self.counters = EngineCounters()
        self._next_rid = 0
        self._in_step: list[Sequence] | None = None
        self._prefilling: set[int] = set()

    # -- requests ---------------------------------------------------------------------------------------

    def submit(
        self, *, prompt_len: int, block_hashes: list[bytes], max_tokens: int, adapter: str | None, now: float
    ) -> Sequence:
        """Queue a request; raise RequestRejectedError when it could never run here."""
        cfg = self.config
        if max_tokens < 1:
            raise RequestRejectedError("max_tokens must be at least 1")
        if prompt_len + max_tokens > cfg.max_model_len:
            raise RequestRejectedError(
                f"this model's maximum context length is {cfg.max_model_len} tokens; the request asks for "
                f"{prompt_len + max_tokens} ({prompt_len} in the prompt, {max_tokens} to generate)"
            )
        if math.ceil((prompt_len + max_tokens) / cfg.block_size) > cfg.kv_blocks:
            raise RequestRejectedError(
                f"the request needs more than the {cfg.kv_blocks} KV-cache blocks this server has"
            )
        if adapter is not None and cfg.max_loras == 0:
            raise RequestRejectedError("this server has no LoRA slots (max_loras is 0)")
        seq = Sequence(
            rid=self._next_rid,
            prompt_len=prompt_len,
            block_hashes=block_hashes,
            max_tokens=max_tokens,
            adapter=adapter,
            arrival=now,
        )
        self._next_rid += 1
        self.waiting.append(seq)
        return seq

    def abort(self, seq: Sequence) -> None:
        """Drop a request (its client went away); its blocks are freed now, or when the current step ends."""
        if seq.done or seq.aborted:
            return
        seq.aborted = True
        if seq in self.waiting:
            self.waiting.remove(seq)
        elif seq in self.running and self._in_step is None:
            self._retire(seq)

    @property
    def has_work(self) -> bool:
        return bool(self.waiting or self.running)

    # -- steps ------------------------------------------------------------------------------------------

    def begin_step(self) -> StepPlan | None:
        """Schedule the next batch; None when there is nothing to run (or nothing can be admitted)."""
        if self._in_step is not None:
            raise RuntimeError("begin_step called twice without finish_step")
        cfg = self.config
        self._ensure_decode_blocks()
        admitted, prefill_tokens, loads = self._admit()
        if not self.running:
            return None
        self._in_step = list(self.running)
        duration_ms = (
            cfg.step_base_ms
            + cfg.decode_ms_per_seq * len(self.running)
            + cfg.prefill_ms_per_token * prefill_tokens
            + cfg.lora_load_ms * loads
        )
        return StepPlan(
            duration_s=duration_ms / 1000.0,
            running=len(self.running),
            prefill_tokens=prefill_tokens,
            admitted=admitted,
            adapters_loaded=loads,
        )

    def finish_step(self, now: float) -> list[TokenEvent]:
        """End the step begun last: each request in the batch gains one token; finished ones leave."""
        batch = self._in_step
        if batch is None:
            raise RuntimeError("finish_step called without begin_step")
        self._in_step = None
        events: list[TokenEvent] = []
        for seq in batch:
            if seq.aborted:
                self._retire(seq)
                continue
            if seq.rid in self._prefilling:
                self._prefilling.discard(seq.rid)
                for block, h in zip(seq.blocks, seq.block_hashes, strict=False):
                    self.pool.register(block=block, block_hash=h)
            seq.generated += 1
            self.counters.generated_tokens += 1
            first = seq.first_token_at is None
            if first:
                seq.first_token_at = now
            if seq.generated >= seq.max_tokens:
                seq.finished_at = now
                self.counters.finished += 1
                self._retire(seq)
            events.append(TokenEvent(seq=seq, first=first))
        return events

    # -- internals --------------------------------------------------------------------------------------

    def _blocks_for(self, tokens: int) -> int:
        return math.ceil(tokens / self.config.block_size)

    def _retire(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.pool.release(seq.blocks)
        seq.blocks = []

    def _ensure_decode_blocks(self) -> None:
        """Give every running request room for its next token, preempting the newest when the cache is
        full."""
        i = 0
        while i < len(self.running):
            seq = self.running[i]
            need = self._blocks_for(seq.prompt_len + seq.generated + 1) - len(seq.blocks)
            while need > 0 and seq in self.running:
                if self.pool.free > 0:
                    seq.blocks.extend(self.pool.allocate(matched=(), new=1))
                    need -= 1
                else:
                    self._preempt(self.running[-1])
            if seq in self.running:
                i += 1

    def _preempt(self, seq: Sequence) -> None:
        self.running.remove(seq)
        self.pool.release(seq.blocks)
        seq.blocks = []
        seq.preemptions += 1
        self.counters.preemptions += 1
        self.waiting.appendleft(seq)

    def _admit(self) -> tuple[int, int, int]:
        cfg = self.config
        budget = cfg.max_num_batched_tokens
        admitted = prefill_total = loads = 0
        passed_over: list[Sequence] = []
        busy_adapters = Counter(s.adapter for s in self.running if s.adapter is not None)
        while self.waiting and len(self.running) < cfg.max_num_seqs:
            seq = self.waiting[0]
            load = seq.adapter is not None and seq.adapter not in self.loaded_adapters
            if load and not self._slot_available(busy_adapters):
                passed_over.append(self.waiting.popleft())
                continue
            tokens = seq.prompt_len + seq.generated
            matched = self.pool.match_prefix(seq.block_hashes)
            new = self._blocks_for(tokens + 1) - len(matched)
            prefill = max(1, tokens - len(matched) * cfg.block_size)
            if admitted and prefill > budget:
                break
            if not self.pool.can_allocate(matched=matched, new=new, keep_free=cfg.watermark_blocks):
                break
            if load:
                self._load_adapter(seq.adapter, busy_adapters)
                loads += 1
            if seq.adapter is not None:
                self.loaded_adapters.move_to_end(seq.adapter)
                busy_adapters[seq.adapter] += 1
            seq.blocks = self.pool.allocate(matched=matched, new=new)
            hit = min(len(matched) * cfg.block_size, seq.prompt_len)
            seq.prefix_hit_tokens = hit
            self.counters.prefix_queries += seq.prompt_len
            self.counters.prefix_hits += hit
            self.counters.prompt_tokens += seq.prompt_len
            self.waiting.popleft()
            self.running.append(seq)
            self._prefilling.add(seq.rid)
            budget -= prefill
            prefill_total += prefill
            admitted += 1
        self.waiting.extendleft(reversed(passed_over))
        return admitted, prefill_total, loads

    def _slot_available(self, busy: Counter[str]) -> bool:
        if len(self.loaded_adapters) < self.config.max_loras:
            return True
        return any(busy[a] == 0 for a in self.loaded_adapters)

    def _load_adapter(self, adapter: str | None, busy: Counter[str]) -> None:
        assert adapter is not None
        if len(self.loaded_adapters) >= self.config.max_loras:
            victim = next(a for a in self.loaded_adapters if busy[a] == 0)
            del self.loaded_adapters[victim]
        self.loaded_adapters[adapter] = None
