// The schema of sloth.db: numbered migrations, applied in order when a database is opened.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "store/db.h"

namespace sloth {

// Every migration, oldest first. Append new ones; never edit a released one.
const std::vector<Migration>& StoreMigrations();

// <data_dir>/sloth.db
std::string DatabasePath(const std::string& data_dir);

// Opens the database at `path` (creating it) and applies pending migrations. The stores of
// one process share the connection this returns.
Result<std::shared_ptr<Db>> OpenDatabase(const std::string& path);

}  // namespace sloth
