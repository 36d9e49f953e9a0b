"""Raft scenarios of the paper as readable transcripts (see transcript.py for the commands)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.consensus.test_simulator import VotesForAnyLog
from tests.consensus.transcript import TranscriptError, run_transcript
from zoolog.consensus.node import RaftNode

DATA = Path(__file__).parent / "testdata"


@pytest.mark.parametrize("path", sorted(DATA.glob("*.txt")), ids=lambda p: p.stem)
def test_transcript(path: Path) -> None:
    run_transcript(path)


class CommitsOldTermsByCounting(RaftNode):
    """Broken: commits entries of earlier terms once a majority holds them."""

    def _maybe_commit(self) -> bool:
        matches = sorted((self.progress[p].match if p in self.progress else 0
                          for p in self.conf.voters), reverse=True)
        candidate = matches[self.quorum() - 1]
        return self.log.commit_to(candidate) if candidate > self.log.committed else False


@pytest.mark.parametrize(("name", "broken"), [("figure8", CommitsOldTermsByCounting),
                                              ("vote_up_to_date", VotesForAnyLog)])
def test_transcripts_catch_broken_variants(name: str, broken: type[RaftNode]) -> None:
    with pytest.raises(TranscriptError):
        run_transcript(DATA / f"{name}.txt", broken)
