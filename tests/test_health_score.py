"""The health score as a pure function: hand-computed cases, the hysteresis that turns scores
into early warnings, and properties that must hold for any station (more trouble never
raises the score)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.service.health import (
    Factor,
    FactorKind,
    HealthInputs,
    HealthPolicy,
    distinct_reboots,
    next_degraded,
    score,
)

POLICY = HealthPolicy()  # 7 days, threshold 60, hysteresis 10, weights 30/30/15/15/10


class TestHandComputedScores:
    def test_a_quiet_station_scores_100(self) -> None:
        result = score(HealthInputs(), POLICY)
        assert result.score == 100
        assert [f.sub_score for f in result.factors] == [100.0] * 5
        assert sum(f.weight for f in result.factors) == 100

    def test_every_input_contributes_by_its_weight(self) -> None:
        # given a week with 7 faults (1/day of 2 → 50), 3 failed of 10 attempts (0.3 of 0.5 →
        # 40), no reboot (100), 7 offline episodes (1/day of 2 → 50), 1 underpowered of 4 (0.25
        # of 0.5 → 50)
        inputs = HealthInputs(
            faults=7,
            failed_sessions=3,
            session_attempts=10,
            heartbeat_gaps=7,
            underpowered_sessions=1,
            low_soc_sessions=4,
        )
        # when
        result = score(inputs, POLICY)
        # then (30·50 + 30·40 + 15·100 + 15·50 + 10·50) / 100 = 54.5, rounded half up
        assert result.score == 55
        by_kind = {f.kind: f for f in result.factors}
        assert by_kind[FactorKind.FAULTS].value == 1.0
        assert by_kind[FactorKind.FAILED_SESSIONS].sub_score == 40.0
        assert by_kind[FactorKind.FAILED_SESSIONS].out_of == 10
        assert by_kind[FactorKind.HEARTBEAT_GAPS].sub_score == 50.0
        assert by_kind[FactorKind.LOW_POWER].value == 0.25
        assert by_kind[FactorKind.REBOOTS].count == 0

    def test_thin_evidence_is_padded_with_sessions_that_went_well(self) -> None:
        # one failed session out of one counts as 1 of the minimum 4: 0.25 of 0.5 → 50
        result = score(HealthInputs(failed_sessions=1, session_attempts=1), POLICY)
        assert result.score == 85  # (30·100 + 30·50 + 15·100 + 15·100 + 10·100) / 100

    def test_rates_are_per_day_of_the_window(self) -> None:
        # 3 reboots in 7 days: 3/7 a day of 1 → 100·(1 − 3/7) = 57.142…
        result = score(HealthInputs(reboots=3), POLICY)
        reboots = next(f for f in result.factors if f.kind is FactorKind.REBOOTS)
        assert (reboots.value, reboots.sub_score) == (0.4286, 57.1)
        assert result.score == 94  # 85 + 15·(400/7)/100 = 93.57…

    def test_a_sub_score_stops_at_zero(self) -> None:
        result = score(HealthInputs(faults=1_000), POLICY)
        assert result.score == 70
        assert result.factors[0].sub_score == 0.0

    def test_a_longer_window_dilutes_the_same_count(self) -> None:
        inputs = HealthInputs(faults=14)
        assert score(inputs, POLICY).score == 70  # 2 a day: faults sub-score 0
        assert score(inputs, replace(POLICY, window_days=14)).score == 85  # 1 a day: 50

    def test_weights_come_from_the_policy(self) -> None:
        weights = {kind: 0 for kind in FactorKind} | {FactorKind.REBOOTS: 1}
        policy = replace(POLICY, weights=weights)
        assert score(HealthInputs(faults=1_000), policy).score == 100
        assert score(HealthInputs(reboots=7), policy).score == 0

    def test_factors_round_trip_through_json(self) -> None:
        result = score(HealthInputs(faults=3, failed_sessions=2, session_attempts=9), POLICY)
        assert tuple(Factor.from_json(d) for d in result.factors_json()) == result.factors


class TestPolicyValidation:
    @pytest.mark.parametrize(
        "change",
        [
            {"window_days": 0},
            {"threshold": 101},
            {"hysteresis": -1},
            {"faults_per_day_at_zero": 0.0},
            {"weights": {FactorKind.FAULTS: 100}},
            {"weights": {kind: 0 for kind in FactorKind}},
        ],
    )
    def test_nonsense_is_refused(self, change: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            replace(POLICY, **change)  # type: ignore[arg-type]


class TestHysteresis:
    def test_a_healthy_station_degrades_below_the_threshold(self) -> None:
        assert next_degraded(False, 59, POLICY) is True
        assert next_degraded(False, 60, POLICY) is False

    def test_a_degraded_station_recovers_only_above_threshold_plus_hysteresis(self) -> None:
        assert next_degraded(True, 69, POLICY) is True
        assert next_degraded(True, 70, POLICY) is False


class TestDistinctReboots:
    def test_boots_in_quick_succession_are_one_reboot(self) -> None:
        t0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
        offsets = [700, 0, 60, 300, 2_000, 2_500]  # unordered, as rows may come
        boots = [t0 + timedelta(seconds=s) for s in offsets]
        assert distinct_reboots(boots, 600) == 3  # 0, 700, 2000
        assert distinct_reboots(boots, 0) == 6
        assert distinct_reboots([], 600) == 0


counts = st.integers(min_value=0, max_value=500)


@st.composite
def station_inputs(draw: st.DrawFn) -> HealthInputs:
    failed = draw(counts)
    underpowered = draw(counts)
    return HealthInputs(
        faults=draw(counts),
        failed_sessions=failed,
        session_attempts=failed + draw(counts),
        reboots=draw(counts),
        heartbeat_gaps=draw(counts),
        underpowered_sessions=underpowered,
        low_soc_sessions=underpowered + draw(counts),
    )


policies = st.builds(
    HealthPolicy,
    window_days=st.integers(min_value=1, max_value=60),
    faults_per_day_at_zero=st.floats(min_value=0.1, max_value=20),
    failed_share_at_zero=st.floats(min_value=0.05, max_value=1),
    min_session_attempts=st.integers(min_value=0, max_value=20),
    reboots_per_day_at_zero=st.floats(min_value=0.1, max_value=10),
)


class TestProperties:
    @given(station_inputs(), policies)
    def test_the_score_and_sub_scores_stay_within_0_and_100(
        self, inputs: HealthInputs, policy: HealthPolicy
    ) -> None:
        result = score(inputs, policy)
        assert 0 <= result.score <= 100
        assert all(0 <= f.sub_score <= 100 for f in result.factors)

    @given(station_inputs(), policies, st.integers(min_value=1, max_value=100))
    def test_more_faults_reboots_or_gaps_never_raise_the_score(
        self, inputs: HealthInputs, policy: HealthPolicy, more: int
    ) -> None:
        base = score(inputs, policy).score
        assert score(replace(inputs, faults=inputs.faults + more), policy).score <= base
        assert score(replace(inputs, reboots=inputs.reboots + more), policy).score <= base
        assert score(replace(inputs, heartbeat_gaps=inputs.heartbeat_gaps + more), policy).score <= base

    @given(station_inputs(), policies, st.integers(min_value=1, max_value=100))
    def test_more_failed_sessions_never_raise_the_score(
        self, inputs: HealthInputs, policy: HealthPolicy, more: int
    ) -> None:
        worse = replace(
            inputs,
            failed_sessions=inputs.failed_sessions + more,
            session_attempts=inputs.session_attempts + more,
        )
        assert score(worse, policy).score <= score(inputs, policy).score

    @given(station_inputs(), policies, st.integers(min_value=1, max_value=100))
    def test_more_sessions_that_went_well_never_lower_the_score(
        self, inputs: HealthInputs, policy: HealthPolicy, more: int
    ) -> None:
        better = replace(
            inputs,
            session_attempts=inputs.session_attempts + more,
            low_soc_sessions=inputs.low_soc_sessions + more,
        )
        assert score(better, policy).score >= score(inputs, policy).score

    @given(station_inputs(), st.integers(min_value=1, max_value=100))
    def test_more_underpowered_sessions_never_raise_the_score(self, inputs: HealthInputs, more: int) -> None:
        worse = replace(
            inputs,
            underpowered_sessions=inputs.underpowered_sessions + more,
            low_soc_sessions=inputs.low_soc_sessions + more,
        )
        assert score(worse, POLICY).score <= score(inputs, POLICY).score

    @given(st.lists(st.integers(min_value=0, max_value=100), max_size=40))
    def test_a_warning_opens_below_the_threshold_and_clears_only_above_the_band(
        self, scores: list[int]
    ) -> None:
        degraded = False
        for s in scores:
            after = next_degraded(degraded, s, POLICY)
            if after and not degraded:
                assert s < POLICY.threshold
            if degraded and not after:
                assert s >= POLICY.threshold + POLICY.hysteresis
            if s < POLICY.threshold:
                assert after  # below the threshold is always degraded
            degraded = after
