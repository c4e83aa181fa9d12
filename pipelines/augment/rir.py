"""Room acoustics: convolution with real measured impulse responses (Fun-ASR section 5.2 mentions
simulated far-field conditions; here the responses are measured, not simulated).

The default response is the street measurement that ships in Debian's jconvolver-config-files
(48 kHz, left and right channels kept as two responses). The response is aligned on its direct
path (its peak), so the reverberant speech does not shift in time, and the wet signal is scaled to
the dry signal's RMS, so the later SNR draw means the same thing with and without reverberation.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

from funfactory.errors import FunfactoryError, MissingAssetError
from funfactory.pipelines.augment.noise_corpus import clip_id, load_audio_16k

DEBIAN_RIR_GLOB = "/usr/share/jconvolver/config-files/demo-reverbs/street2-*.wav"


@dataclass(frozen=True)
class ImpulseResponse:
    id: str
    path: str
    response: np.ndarray


def load_impulse_responses(paths: list[str] | None = None) -> list[ImpulseResponse]:
    """Responses from `paths` (files or folders); default: the Debian street measurement."""
    if not paths:
        files = sorted(glob.glob(DEBIAN_RIR_GLOB))
        if not files:
            raise MissingAssetError("no impulse response given and the default needs the Debian "
                                    "package jconvolver-config-files: apt-get install "
                                    "jconvolver-config-files, or set rir.paths")
    else:
        files = []
        for p in paths:
            path = Path(p)
            files += sorted(str(f) for f in path.rglob("*.wav")) if path.is_dir() else [str(path)]
    responses = []
    for f in files:
        response = load_audio_16k(f).astype(np.float64)
        peak = int(np.argmax(np.abs(response)))
        response = response[peak:]
        response /= np.abs(response[0])
        responses.append(ImpulseResponse(clip_id("rir", f), f, response.astype(np.float32)))
    if not responses:
        raise FunfactoryError(f"no impulse responses (.wav) found in {paths}")
    return responses


def apply_rir(speech: np.ndarray, rir: ImpulseResponse) -> np.ndarray:
    """Reverberant `speech`: convolved, cut to the dry length, at the dry RMS."""
    dry = np.asarray(speech, np.float64)
    wet = fftconvolve(dry, rir.response.astype(np.float64))[:dry.size]
    wet_rms = np.sqrt(np.mean(wet ** 2))
    if wet_rms == 0:
        return np.asarray(speech, np.float32)
    wet *= np.sqrt(np.mean(dry ** 2)) / wet_rms
    peak = np.max(np.abs(wet))
    if peak > 0.99:
        wet *= 0.99 / peak
    return wet.astype(np.float32)
