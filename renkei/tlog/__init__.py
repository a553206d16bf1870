"""The verifiable log's pieces (issue 14)"""
