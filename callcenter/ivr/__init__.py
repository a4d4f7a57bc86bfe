"""The IVR: flows loaded from YAML, a pure interpreter, and the TTS and ASR adapters.

* :mod:`callcenter.ivr.steps` and :mod:`callcenter.ivr.flow` hold the flow
  model and its loader, which refuses a bad flow with an error naming the
  flow, the step and the field;
* :mod:`callcenter.ivr.events` holds what goes into the interpreter (events
  from the voice layer) and what comes out (actions the voice layer carries
  out);
* :mod:`callcenter.ivr.interpreter` runs one call through a flow without any
  I/O (``now`` is passed in);
* :mod:`callcenter.ivr.tts` renders prompts to cached G.711 with espeak-ng,
  :mod:`callcenter.ivr.asr` recognises short spoken answers with vosk, and
  :mod:`callcenter.ivr.resample` converts between their sample rates.
"""
