from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bot.crypto import TokenCipher
from bot.storage import Storage


@pytest.fixture
def cipher() -> TokenCipher:
    return TokenCipher(Fernet.generate_key())


@pytest.fixture
async def storage(tmp_path: Path, cipher: TokenCipher) -> AsyncIterator[Storage]:
    opened = await Storage.open(tmp_path / "bot.db", cipher)
    try:
        yield opened
    finally:
        await opened.close()
