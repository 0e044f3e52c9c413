"""stonewall: storage-centric fencing for KVM clusters."""

__version__ = "0.1.0"  # the one place; pyproject.toml, --version and the packages read it
