"""Regenerates crates/ha/tests/data/quorum_golden.txt: the transitions Python Patroni's quorum state resolver
computes for random states (and for states reached by applying its own transitions while standbys come and go),
so `crates/ha/tests/quorum_golden.rs` checks our resolver against it line by line.

Run with the Python Patroni of the venv: /tmp/patroni-py-venv/bin/python scripts/quorum-golden.py
"""
import logging
import random

from patroni.quorum import QuorumStateResolver

logging.disable(logging.CRITICAL)
NODES = 'abcdef'


def fmt_set(s):
    return ','.join(sorted(s))


def run(state):
    try:
        out = []
        for kind, leader, num, names in QuorumStateResolver(**state):
            if kind == 'restart':
                out.append('r')
            elif kind == 'quorum':
                out.append(f'q:{leader}:{num}:{fmt_set(names)}')
            else:
                out.append(f's:{num}:{fmt_set(names)}')
        return ';'.join(out) or '-', out
    except Exception:
        return 'ERR', None


def line(state, result):
    return '|'.join([state['leader'], str(state['quorum']), fmt_set(state['voters']), str(state['numsync']),
                     fmt_set(state['sync']), str(state['numsync_confirmed']), fmt_set(state['active']),
                     str(state['sync_wanted']), state['leader_wanted']]) + ' => ' + result


def subset(rng, pool):
    return {n for n in pool if rng.random() < 0.5}


def main():
    rng = random.Random(16)
    lines = []
    seen = set()

    def emit(state):
        result, out = run(state)
        text = line(state, result)
        if text not in seen:
            seen.add(text)
            lines.append(text)
        return out

    for _ in range(700):
        n = rng.randint(2, 6)
        pool = NODES[:n]
        leader = 'a'
        wanted = 'a' if rng.random() < 0.8 else rng.choice(pool[1:])
        others = [x for x in pool if x != wanted]
        voters = subset(rng, [x for x in pool if x != leader])
        sync = set(voters) if rng.random() < 0.6 else subset(rng, others)
        numsync = rng.randint(0, len(sync)) if sync else 0
        quorum = max(0, len(voters) - numsync) if rng.random() < 0.6 else rng.randint(0, max(0, len(voters)))
        state = dict(leader=leader, quorum=quorum, voters=voters, numsync=numsync, sync=sync,
                     numsync_confirmed=rng.randint(0, numsync), active=subset(rng, others),
                     sync_wanted=rng.randint(1, 4), leader_wanted=wanted)
        # Walk: apply the transitions as the leader would, members joining and leaving between rounds.
        for _ in range(6):
            out = emit(state)
            if not out:
                break
            for t in out:
                if t == 'r':
                    break
                parts = t.split(':')
                if parts[0] == 'q':
                    state = dict(state, leader=parts[1], quorum=int(parts[2]),
                                 voters=set(filter(None, parts[3].split(','))))
                else:
                    state = dict(state, numsync=int(parts[1]), sync=set(filter(None, parts[2].split(','))))
            state['numsync_confirmed'] = min(state['numsync'], len(state['sync'] & state['active']))
            if rng.random() < 0.5:
                state['active'] = subset(rng, [x for x in pool if x != state['leader_wanted']])
            if rng.random() < 0.2:
                state['sync_wanted'] = rng.randint(1, 4)
    print('\n'.join(lines))


main()
