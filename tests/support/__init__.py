"""What several test modules share beyond conftest's fixtures: hand-built examples, the test sweep
runner, the HTTP endpoint, a small study. Test modules import from here, never from each other."""
