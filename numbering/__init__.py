"""The numbering agency (番号生成機関): issues the 12-digit Number (R8, R10, R11)."""
