-- Records a batch line's result once and ends the batch when it was the last; see
-- FINISH_LINE in mod.rs.
local b = KEYS[1]
if redis.call('EXISTS', b) == 0 then return 0 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 1 then
  local flag = string.sub(ARGV[2], 1, 1)
  if flag == '0' then redis.call('HINCRBY', b, 'completed', 1)
  elseif flag == '1' then redis.call('HINCRBY', b, 'failed', 1) end
end
local status = redis.call('HGET', b, 'status')
if status ~= 'in_progress' and status ~= 'cancelling' then return 1 end
local total = tonumber(redis.call('HGET', b, 'total'))
if redis.call('HLEN', KEYS[2]) < total then return 1 end
local all = redis.call('HGETALL', KEYS[2])
local order = {}
for i = 1, #all, 2 do order[#order + 1] = i end
table.sort(order, function(x, y) return all[x] < all[y] end)
local out, err = {}, {}
for _, i in ipairs(order) do
  local v = all[i + 1]
  local flag = string.sub(v, 1, 1)
  if flag == '0' then out[#out + 1] = string.sub(v, 2) .. '\n'
  elseif flag == '1' then err[#err + 1] = string.sub(v, 2) .. '\n' end
end
local owner = redis.call('HGET', b, 'owner')
local function put(key, id, name, lines)
  local content = table.concat(lines)
  redis.call('HSET', key, 'id', id, 'bytes', string.len(content), 'created_at', ARGV[3],
    'filename', name, 'purpose', 'batch_output', 'status', 'processed', 'content', content)
  if owner then redis.call('HSET', key, 'owner', owner) end
  redis.call('ZADD', KEYS[3], 0, id)
end
if #out > 0 then
  put(KEYS[4], ARGV[4], ARGV[6], out)
  redis.call('HSET', b, 'output_file_id', ARGV[4])
end
if #err > 0 then
  put(KEYS[5], ARGV[5], ARGV[7], err)
  redis.call('HSET', b, 'error_file_id', ARGV[5])
end
if status == 'cancelling' then
  redis.call('HSET', b, 'status', 'cancelled', 'cancelled_at', ARGV[3])
elseif redis.call('HEXISTS', b, 'expired_at') == 1 then
  redis.call('HSET', b, 'status', 'expired')
else
  redis.call('HSET', b, 'status', 'completed', 'finalizing_at', ARGV[3], 'completed_at', ARGV[3])
end
return 2
