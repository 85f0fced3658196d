"""Text to speech: `frontend` (text → phonemes), the engines `kokoro` (the teacher) and `piper`, `voices`
(one module per voice engine and the registry), `encoding` (the audio formats sent out)."""
