"""funfactory.model: the Fun-ASR model (report section 2) and its decoding (sections 5.1, 5.5).

frontend.py (Kaldi fbank, LFR) and cmvn.py -> encoder.py (Qwen3-shaped transformer, LLM-layer
initialisation) -> ctc.py (CTC head, vocabulary, greedy with timestamps) and adaptor.py -> llm.py
(local causal LM, prompt template, audio splicing, generation); asr.py composes them
(`FunASRModel`), checkpoint.py saves and loads them, configs.py holds the sizes, hotword.py retrieves
hotword candidates, decode.py and streaming.py decode offline and over chunks, tiny_llm.py builds the
tiny offline Qwen3 used by tests and benches. whisper.py is the pretrained Whisper encoder and
log-mel frontend of the `cpu` size (section 4.1), encoding_cache.py memoises a frozen encoder's
output per utterance.
"""
