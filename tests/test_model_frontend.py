"""Frontend: Kaldi fbank against kaldi-native-fbank, LFR stacking, global CMVN."""

import kaldi_native_fbank as knf
import numpy as np
import pytest
import torch

from funfactory.errors import FunfactoryError
from funfactory.model.cmvn import compute_global_cmvn
from funfactory.model.configs import FrontendConfig
from funfactory.model.decode import waveform_batch
from funfactory.model.frontend import Frontend, lfr_stack


def knf_fbank(audio: np.ndarray) -> np.ndarray:
    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0.0
    opts.frame_opts.snip_edges = True
    opts.mel_opts.num_bins = 80
    fbank = knf.OnlineFbank(opts)
    fbank.accept_waveform(16000, (audio * 32768.0).tolist())
    fbank.input_finished()
    return np.stack([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])


def test_fbank_matches_kaldi_native_fbank_on_a_mixed_length_batch(speech_clips):
    clips = [audio for _, audio in speech_clips[:3]]
    clips.append(clips[0][:7000])  # a short one, so the batch is padded
    frontend = Frontend(FrontendConfig())
    batch, lengths = waveform_batch(clips)
    feats, frame_lengths = frontend.fbank(batch, lengths)
    for i, audio in enumerate(clips):
        reference = knf_fbank(audio)
        assert int(frame_lengths[i]) == reference.shape[0]
        ours = feats[i, : reference.shape[0]].numpy()
        assert np.abs(ours - reference).max() < 2e-3
        assert not feats[i, reference.shape[0]:].any()


def reference_lfr(frames: np.ndarray, m: int, n: int) -> np.ndarray:
    """FunASR's LFR written as the plain loop it is."""
    t = frames.shape[0]
    padded = np.concatenate([np.repeat(frames[:1], (m - 1) // 2, axis=0), frames])
    out = []
    for i in range(-(-t // n)):
        window = padded[i * n : i * n + m]
        if window.shape[0] < m:
            window = np.concatenate([window, np.repeat(padded[-1:], m - window.shape[0], axis=0)])
        out.append(window.reshape(-1))
    return np.stack(out)


@pytest.mark.parametrize("lengths", [[1, 6, 7, 13], [50, 3, 49, 12]])
def test_lfr_stack_matches_the_reference_loop_and_streaming_prefixes(lengths):
    rng = np.random.default_rng(0)
    feats = torch.zeros(len(lengths), max(lengths), 4)
    for i, t in enumerate(lengths):
        feats[i, :t] = torch.from_numpy(rng.standard_normal((t, 4)).astype(np.float32))
    stacked, out_lengths = lfr_stack(feats, torch.tensor(lengths), 7, 6)
    partial, partial_lengths = lfr_stack(feats, torch.tensor(lengths), 7, 6, final=False)
    for i, t in enumerate(lengths):
        expected = reference_lfr(feats[i, :t].numpy(), 7, 6)
        assert int(out_lengths[i]) == expected.shape[0]
        np.testing.assert_allclose(stacked[i, : expected.shape[0]].numpy(), expected)
        assert not stacked[i, expected.shape[0]:].any()
        # frames a stream may emit early are those whose 7 source frames all exist already
        k = int(partial_lengths[i])
        assert k <= expected.shape[0] and (k == 0 or (k - 1) * 6 + 3 <= t - 1)
        np.testing.assert_allclose(partial[i, :k].numpy(), expected[:k])


def test_global_cmvn_from_audio_normalises_features(speech_clips):
    frontend = Frontend(FrontendConfig())
    audios = [audio for _, audio in speech_clips]
    frames = compute_global_cmvn(frontend, iter(audios))
    batch, lengths = waveform_batch(audios)
    feats, frame_lengths = frontend.fbank(batch, lengths)
    assert frames == int(frame_lengths.sum())
    valid = torch.cat([frontend.cmvn(feats[i, : int(n)]) for i, n in enumerate(frame_lengths)])
    assert valid.mean(0).abs().max() < 1e-3
    assert (valid.std(0) - 1).abs().max() < 1e-2
    with pytest.raises(FunfactoryError, match="16000 Hz"):
        compute_global_cmvn(frontend, audios, sample_rate=22050)
