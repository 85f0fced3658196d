"""Text to speech: `frontend` (text → phonemes), `kokoro` (the teacher), `voices` (the registry), `piper`."""
