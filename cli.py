"""The `stonewall` command."""
def main() -> int:
    return 0
