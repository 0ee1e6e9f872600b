"""Operations: the node process, the ``snakepit-actors`` CLI (start, status, exec, recycle,
doctor, bench), TOML configuration, metrics and orphan reaping."""
