"""``align_classical``: every weightless coarse aligner, each candidate ECC-refined, one verification score.

Convention: ``ClassicalAlignment.homography`` is a (3, 3) float64 matrix mapping **source pixels to target
pixels** (pixel centres at integers), so ``cv2.warpPerspective(source, homography, (W_t, H_t))`` draws the
source in the target's frame; its inverse maps target pixels to where they are read in the source.

Candidates: ``rootsift`` (RootSIFT + guided matching, homography; several seeds), ``rootsift_similarity``
(the same with a similarity model, for copies with few true matches), ``fourier_mellin`` (whole-composition
similarity) and ``identity`` (the source frame stretched onto the target's: the start of ECC alone, for
copies already framed alike). All are scored by ``verification.Verifier``; with ``refine_ecc`` the
``ecc_candidates`` best are also refined by ECC and scored as ``<name>+ecc``. The best candidate is
returned, verified only when it reaches the minimum score and beats the identity's score by the margin: an
already aligned pair is therefore reported as not verified, "no better than the identity".
"""

from __future__ import annotations

import dataclasses

import numpy as np

from artdup_jax.geometry.classical import ecc, fourier_mellin, preprocess, rootsift, verification

METHODS = ("rootsift", "rootsift_similarity", "fourier_mellin", "identity")


@dataclasses.dataclass(frozen=True)
class ClassicalConfig:
    rootsift: rootsift.RootSiftConfig = rootsift.RootSiftConfig()
    fourier_mellin: fourier_mellin.FourierMellinConfig = fourier_mellin.FourierMellinConfig()
    ecc: ecc.EccConfig = ecc.EccConfig()
    verification: verification.VerificationConfig = verification.VerificationConfig()
    ecc_candidates: int = 2  # ECC refines only the best few raw candidates (ECC costs more than a score)


@dataclasses.dataclass
class ClassicalAlignment:
    homography: np.ndarray | None  # (3, 3) float64, source → target pixels; None when no candidate existed
    method: str | None  # the chosen candidate, e.g. "rootsift+ecc"
    score: float  # its verification score in [-1, 1] (-1: too little overlap)
    identity_score: float  # the score of no alignment
    verified: bool
    candidate_scores: dict[str, float]  # every candidate (raw and "+ecc") → score
    reason: str | None  # why it is not verified; None when verified


def _candidates(grey_s: np.ndarray, grey_t: np.ndarray, methods, config: ClassicalConfig) -> dict[str, np.ndarray]:
    """Raw candidate homographies by name (several RootSIFT seeds become ``rootsift``, ``rootsift#2``, ...)."""
    out = {}
    hypotheses = None  # RootSIFT's, shared by both of its models
    for method in methods:
        if method in ("rootsift", "rootsift_similarity"):
            if hypotheses is None:
                hypotheses = rootsift.rootsift_homographies(grey_s, grey_t, config.rootsift)
            model = "homography" if method == "rootsift" else "similarity"
            for k, hypothesis in enumerate(hypotheses):
                if getattr(hypothesis, model) is not None:
                    out[method if k == 0 else f"{method}#{k + 1}"] = getattr(hypothesis, model)
        elif method == "fourier_mellin":
            result = fourier_mellin.fourier_mellin(grey_s, grey_t, config.fourier_mellin)
            if result.homography is not None:
                out[method] = result.homography
        elif method == "identity":
            out[method] = verification.identity_homography(grey_s.shape, grey_t.shape)
        else:
            raise ValueError(f"unknown method {method!r}; known: {METHODS}")
    return out


def align_classical(source: np.ndarray, target: np.ndarray, *, methods: tuple[str, ...] = METHODS,
                    refine_ecc: bool = True, config: ClassicalConfig = ClassicalConfig()) -> ClassicalAlignment:
    """Aligns ``source`` onto ``target`` without learned weights.

    source, target: (H, W, 3) RGB or (H, W) grey, uint8 or float in [0, 1] (any sizes). Returns the best
    candidate (see the module docstring for the homography's convention).
    """
    grey_s, grey_t = preprocess.to_grey(source), preprocess.to_grey(target)
    verifier = verification.Verifier(grey_s, grey_t, config.verification)
    identity_score = verifier.identity().score
    candidates = _candidates(grey_s, grey_t, methods, config)
    scores = {name: verifier.score(H).score for name, H in candidates.items()}
    if refine_ecc:
        for name in sorted(scores, key=lambda n: -scores[n])[: config.ecc_candidates]:
            refined = ecc.refine_ecc(grey_s, grey_t, candidates[name], config.ecc)
            if refined is not None:
                candidates[f"{name}+ecc"] = refined
                scores[f"{name}+ecc"] = verifier.score(refined).score
    if not candidates:
        return ClassicalAlignment(None, None, -1.0, identity_score, False, {}, "no aligner produced a candidate")
    best = max(scores, key=lambda n: scores[n])
    verified = verifier.verified(scores[best], identity_score)
    reason = None
    if not verified:
        margin, min_score = config.verification.margin, config.verification.min_score
        if scores[best] < identity_score + margin:
            reason = (f"no candidate beats the identity (no alignment) by {margin}: best {best} scores "
                      f"{scores[best]:.3f}, the identity {identity_score:.3f}")
        else:
            reason = f"best candidate {best} scores {scores[best]:.3f}, under the {min_score} a match reaches"
    return ClassicalAlignment(candidates[best], best, scores[best], identity_score, verified, scores, reason)
