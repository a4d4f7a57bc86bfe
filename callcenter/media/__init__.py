"""Media cores: RTP, G.711, telephone events, in-band DTMF, jitter buffer, WAV (pure, no I/O)."""
