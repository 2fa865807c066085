"""Agents needed to answer calls: Erlang C (callers wait for ever) and Erlang A (callers hang up).

Erlang C (M/M/N) is the call centre's classic, and it over-staffs a real line: callers who wait too long
hang up, which shortens the queue for the rest. Erlang A (M/M/N+M, Palm's model) adds an exponential
patience, so its answer is the smaller, more honest figure whenever callers do abandon; both are given so a
planner sees the bound and the estimate.

The service level is the share of *all* callers answered within the target wait: a caller who hangs up is
never counted as answered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Agents are searched up to this many above the offered load (in Erlangs): far past any useful answer.
_SEARCH_ABOVE = 200
_MAX_STATES = 2000


@dataclass(frozen=True)
class Staffing:
    agents: int
    service_level: float  # share of callers answered within the target wait
    abandoned: float  # share of callers who hang up (0 under Erlang C)
    occupancy: float  # share of the agents' time spent on calls


def erlang_c_wait_probability(agents: int, load: float) -> float:
    """P(a caller waits) with `agents` servers and `load` Erlangs; 1 when the queue never empties."""
    if load <= 0:
        return 0.0
    if agents <= load:
        return 1.0
    # Erlang B by its stable recursion, then C from B.
    b = 1.0
    for n in range(1, agents + 1):
        b = load * b / (n + load * b)
    rho = load / agents
    return b / (1 - rho + rho * b)


def erlang_c(calls_per_hour: float, handle_seconds: float, target_seconds: float, agents: int) -> Staffing:
    load = calls_per_hour * handle_seconds / 3600
    if load <= 0:
        return Staffing(agents, 1.0, 0.0, 0.0)
    if agents <= load:
        return Staffing(agents, 0.0, 0.0, 1.0)
    wait = erlang_c_wait_probability(agents, load)
    level = 1 - wait * math.exp(-(agents - load) * target_seconds / handle_seconds)
    return Staffing(agents, level, 0.0, load / agents)


def erlang_a(
    calls_per_hour: float, handle_seconds: float, target_seconds: float, agents: int, patience_seconds: float
) -> Staffing:
    """Erlang A, solved exactly on the birth-death chain of calls in the system (truncated where its mass
    is negligible); the wait of a caller who finds k ahead is a small absorbing chain."""
    lam = calls_per_hour / 3600
    mu = 1 / handle_seconds
    theta = 1 / patience_seconds
    if lam <= 0:
        return Staffing(agents, 1.0, 0.0, 0.0)
    # The chain's mass falls off geometrically once the outflow passes lam; it is cut where what is left
    # is below e^-30 of its peak (or at _MAX_STATES, where an overloaded queue is already a failure).
    log_p = [0.0]
    n = 0
    while n < _MAX_STATES:
        n += 1
        out = min(n, agents) * mu + max(n - agents, 0) * theta
        log_p.append(log_p[-1] + math.log(lam / out))
        if n > agents and out > lam and log_p[-1] < max(log_p) - 30:
            break
    p = np.exp(np.array(log_p) - max(log_p))
    p /= p.sum()
    size = len(p) - 1
    busy = float(sum(p[n] * min(n, agents) for n in range(size + 1)) / agents)
    # PASTA: an arrival sees the stationary distribution. Finding n < agents it is answered at once.
    answered_now = float(p[:agents].sum())
    waiting = p[agents:]  # finds k = n - agents callers ahead of it in the queue
    level = answered_now
    if target_seconds > 0 and len(waiting):
        level += float(waiting @ _answered_within(len(waiting), agents * mu, theta, target_seconds))
    served_rate = busy * agents * mu
    abandoned = max(0.0, 1 - served_rate / lam)
    return Staffing(agents, min(1.0, level), abandoned, busy)


def _answered_within(ahead: int, service_rate: float, theta: float, t: float) -> np.ndarray:
    """For a caller with k = 0..ahead-1 ahead in the queue: P(answered within t).

    Position k moves to k-1 at the rate servers free up plus the rate of those ahead hanging up (k theta),
    and from position 0 the caller is answered at the servers' rate; the caller hangs up at theta. Solved
    by uniformisation: a sum of Poisson-weighted steps of the chain, each a vector operation, where a
    matrix exponential would cost the cube of a queue that can be thousands long.
    """
    forward = service_rate + np.arange(ahead) * theta
    rate = float(forward[-1] + theta)
    stay = 1 - (forward + theta) / rate
    move = forward / rate
    mean = rate * t
    steps = int(mean + 10 * math.sqrt(mean) + 10)
    w = np.zeros(ahead)  # P(answered by the chain's m-th step), per starting position
    total = np.zeros(ahead)
    for m in range(1, steps + 1):
        w = stay * w + move * np.concatenate(([1.0], w[:-1]))
        total += math.exp(m * math.log(mean) - mean - math.lgamma(m + 1)) * w  # Poisson(mean) at m
    return total


def agents_needed(
    calls_per_hour: float,
    handle_seconds: float,
    *,
    target_level: float,
    target_seconds: float,
    patience_seconds: float | None = None,
) -> Staffing:
    """The fewest agents answering `target_level` of callers within `target_seconds`: Erlang C, or
    Erlang A with `patience_seconds`. Zero calls need zero agents."""
    load = calls_per_hour * handle_seconds / 3600
    if load <= 0:
        return Staffing(0, 1.0, 0.0, 0.0)
    start = max(1, math.floor(load) if patience_seconds else math.floor(load) + 1)
    for agents in range(start, start + int(load) + _SEARCH_ABOVE):
        s = (
            erlang_a(calls_per_hour, handle_seconds, target_seconds, agents, patience_seconds)
            if patience_seconds
            else erlang_c(calls_per_hour, handle_seconds, target_seconds, agents)
        )
        if s.service_level >= target_level:
            return s
    raise ValueError(f"no staffing up to {start + int(load) + _SEARCH_ABOVE} agents reaches {target_level}")
