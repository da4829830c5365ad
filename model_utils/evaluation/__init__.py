"""How far off were the guesses: the paper's accuracy table and its report files."""
